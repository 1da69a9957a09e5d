"""ademix-sweep: tune and compare the AdEMAMix optimizer against AdamW."""

__version__ = "0.1.0"
