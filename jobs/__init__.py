"""Entry points: the img2txt CLI, the training job, scheduling and deployment."""
