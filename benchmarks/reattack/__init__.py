"""Re-attack of issue 20: generate hostile inputs for every row of the issue and classify what the package does.

    PYTHONPATH=$PWD python -m benchmarks.reattack --out /tmp/reattack [--only coco,voc] [--timeout 120]

Each case writes its inputs into its own folder under ``--out`` and states what it expects: a *refusal* (an error
whose message names the file and the key/value given in the case), a *result* (checked by the case), or *either*.
API cases run in a forked child process (the parent imported torch once, so a fork is cheap) with an address-space
limit and a timeout; CLI cases run ``python -m lightning_retina.cli`` as a subprocess. Outcomes:

- ``ok``: worked as expected, or refused with an error naming what the case says it must name;
- ``unclear_error``: an exception or a CLI error that does not name the file / key / value, or a raw traceback;
- ``silent_wrong``: ran, but the result is wrong (including "accepted what must be refused");
- ``data_loss``: a pre-existing user file changed or vanished (SHA-256 before and after);
- ``hang``: ran past the timeout;
- ``resource``: peak memory more than ``--mem-cap-gib`` above the start (or the address-space limit was hit).

Writes ``OUT/reattack.json`` (every case) and ``OUT/reattack.md`` (tables per category and totals).

Files (one concern each):

- ``cli.py``: argument parsing, ``main`` (the base checkpoint, the case selection, the run) and the reports;
- ``harness.py``: ``Case``, ``Result``, file hashes, the forked-child and CLI runners, ``classify``, ``run_case``;
- ``inputs.py``: shared generators (images, PNG bombs, COCO / VOC base data, user folders, checkpoints);
- ``cases_writers.py`` (``data_loss``), ``cases_coco.py``, ``cases_voc.py``, ``cases_images.py``,
  ``cases_checkpoints.py``, ``cases_alwa.py``, ``cases_cli.py``: one module per case category;
- ``__main__.py``: ``python -m benchmarks.reattack``.
"""
