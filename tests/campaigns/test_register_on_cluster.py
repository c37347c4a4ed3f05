"""tests/campaigns/test_register.py again, with the app on a real Redis Cluster (tests/on_cluster.py)."""
from tests.on_cluster import again_on_cluster

globals().update(again_on_cluster("tests.campaigns.test_register"))
