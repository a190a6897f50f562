"""The transfers accelerator (Orthanc's Transfers plugin, built in): whole studies moved
between servers in buckets, in parallel, MD5-checked, and stored on the receiver only once
everything has arrived.

``settings`` (the ``Transfers`` section), ``buckets`` (the wire format and the bucket
algorithm), ``source`` (the sender side: lookups and chunks), ``staging`` (the receiver's
download area), ``push`` (the receiver's push transactions), ``client`` (HTTP calls to a
peer); the jobs are in :mod:`server.jobs.transfers`, the routes in :mod:`server.rest.transfers`.
"""
