"""sr_kd's studies and benchmarks: each module is run from the repository root as ``python -m scripts.NAME``
(``--help`` says what it measures); what they share is in ``scripts.study_core``. Their runs live outside
the repository; what an unfinished run needs to resume elsewhere is kept under docs/ (newest state only)."""
