"""LINSTOR-aware volumes: capacity and DRBD health of parent volumes, read from the parent's LINSTOR controller.

Optional in every respect: without a configured LINSTOR connection, or while the controller cannot be reached,
callers get None ("unknown") and carry on; provisioning and attach never wait on LINSTOR.

    settings.py  connection settings (controller URLs, TLS files from a Secret, timeouts); flags.py the CLI
    client.py    a thin async client of the few REST endpoints we read; models.py its narrow pydantic models
    health.py    pure: LINSTOR resources of one volume -> abnormal?, precise message
    capacity.py  pure: size info or storage pools + placement count -> bytes
    mapping.py   pure: parent PV -> resource definition, parent StorageClass parameters -> placement
    cache.py     answers reused for a TTL, one load per key, the memory of LINSTOR being down
    view.py      LinstorView, what the CSI controller holds: claim -> condition, storage class -> capacity
    events.py    health transitions -> Events on the tenant PVC
"""
