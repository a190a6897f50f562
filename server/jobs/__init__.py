"""The jobs engine and the job types."""
