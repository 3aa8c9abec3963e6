"""Beyond one machine: the embarrassingly parallel jobs on a Ray cluster (optional extra
``pip install "digitaltwin-jax[distributed]"``).

This package is the job-independent part, in the lowest layer (it imports nothing of ours):

* :mod:`.cluster`: connect to Ray (``"local"`` starts a private instance; an address joins a cluster).
* :mod:`.engine`: one actor per worker process loads the model and compiles once, then maps items;
  failures per item are recorded, killed workers are restarted and their item retried, progress is shown.

Each job's Ray adapter lives beside the job (it knows how to set a worker up):

* :mod:`digitaltwin_jax.ray_avatars`: ``digitaltwin avatar --batch ... --ray`` (an avatar folder per photo);
* :mod:`digitaltwin_jax.synth.ray_shards`: ``digitaltwin synth ... --ray`` (a shard per task,
  bit-identical to the local path);
* :mod:`digitaltwin_jax.regressor.ray_embed`: ``digitaltwin regressor embed ... --ray`` (the front-end
  cache of a synthetic set).

Data-parallel *training* does not need Ray: :mod:`digitaltwin_jax.regressor.parallel` shards the
batch over JAX devices (``jax.sharding``) and runs multi-host with ``jax.distributed.initialize``.

Resumability comes from the outputs, never from Ray: every shard / avatar folder is written to a
temporary name and renamed when complete, and a rerun skips what exists.  Workers read their inputs
and write their outputs themselves, so on several nodes input and output folders must be on a file
system every node sees (NFS, a cluster file system) at the same path.
"""
