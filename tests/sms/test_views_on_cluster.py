"""tests/sms/test_views.py again, with the app on a real Redis Cluster (tests/on_cluster.py)."""
from tests.on_cluster import again_on_cluster

globals().update(again_on_cluster("tests.sms.test_views", without=(
    "test_redis_down_is_not_a_5xx",  # a fakeredis outage
)))
