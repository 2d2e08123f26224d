"""File names of a run folder, shared by the training side and the deploy side (which must not import
:mod:`distill.checkpoint`, a torch module, to find a student in a folder)."""

STUDENT_FILE = "student.pt"  # the deployable student (distill.checkpoint)
TRAIN_STATE_FILE = "checkpoint.pt"  # the full training state for --resume
EXPORT_DIR = "export"  # a run folder's default export folder
