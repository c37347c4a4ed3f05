"""tests/sms/test_bulk_batches.py again, with the app on a real Redis Cluster (tests/on_cluster.py)."""
from tests.on_cluster import again_on_cluster

globals().update(again_on_cluster("tests.sms.test_bulk_batches"))
