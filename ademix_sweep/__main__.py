from ademix_sweep.cli import app

app(prog_name="ademix-sweep")
