"""Scale-out: the same API and page in front of several Engine replicas on Ray Serve (``--replicas N``).

Only :mod:`webui` imports this package, and only with ``--replicas``; nothing here is imported otherwise, so
``ray`` stays an optional dependency (``pip install .[cluster]``). See docs/scale-out.md.

- :mod:`.runtime` starts (or joins, ``--ray-address``) the Ray cluster and deploys the replicas.
- :mod:`.replica` is the Ray Serve deployment: one Engine (and its script layer) per GPU or CPU process.
- :mod:`.board` is the small actor through which replicas report progress and receive interrupt/skip.
- :mod:`.dispatch` is the front's script host: it routes each request, splits batches, retries, saves.
- :mod:`.front_state` is the front's job state: what the progress routes read, built from the replicas'.
"""
