"""The user attributes the engine writes on a trial: the storage half of its contract with every
reader (status, export, plots, compare, the next run's recovery). Plain Optuna attributes, so
optuna-dashboard and plain ``optuna.load_study`` see them too."""

WORKER_HOST = "worker_host"  # the machine of the worker that ran the trial
WORKER_PID = "worker_pid"  # its process id there (dead-worker recovery matches host and pid)
WORKER_RANK = "worker_rank"
DEVICE = "device"  # what it trained on ("cpu", "cuda:0", then the device's full name)
SEED = "seed"
FAILURE = "failure"  # why it failed, diverged or was not run: "interrupted", "surplus", "timeout: ...", ...
DIVERGED_STEP = "diverged_step"
TRAIN_CURVE = "train_curve"  # [(step, mean training loss)]
ITEMS_PER_S = "items_per_s"
UNIT = "unit"  # what items are: tokens, samples or steps
WALL_TIME_S = "wall_time_s"
PEAK_MEMORY_BYTES = "peak_memory_bytes"
PRECISION = "precision"
LOG = "log"  # a command trial's output: host:path of its log file
WARNING = "warning"  # something about the trial the user should see (a malformed report line)
COMPARE = "compare"  # on a compare run: optimizer, source_trial, rank, seed, params

INTERRUPTED = "interrupted"  # the FAILURE of a trial stopped by Ctrl-C or SIGTERM (re-queued)
SURPLUS = "surplus"  # the FAILURE of a trial that found the budget taken (not trained)
DEATHS = "worker_deaths"  # system attribute of a re-queued copy: its worker deaths so far
