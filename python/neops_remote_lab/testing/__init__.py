"""pytest integration: lab fixtures, test ordering, the run's queue session and its progress."""
