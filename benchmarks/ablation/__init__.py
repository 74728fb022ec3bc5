"""The loss ablation (issue 19): focal vs CE vs α-CE, ALWA on/off per box loss, the focal γ sweep — paired runs on a
fixed step budget from a backbone pretrained once, compared with the baseline seed by seed.

Files: ``settings`` (what trains), ``pretrain`` (the shared backbone), ``runs`` (one run, saved results),
``evaluation`` (val mAP along a run), ``stats`` (paired t intervals), ``report`` (table and figure), ``cli``.
"""
