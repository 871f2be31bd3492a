"""The sandbox: everything needed to run the broker on one machine without Azure (never deployed)."""
