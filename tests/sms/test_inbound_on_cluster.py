"""tests/sms/test_inbound.py again, with the app on a real Redis Cluster (tests/on_cluster.py)."""
from tests.on_cluster import again_on_cluster

globals().update(again_on_cluster("tests.sms.test_inbound", without=(
    "test_twilio_redis_down_tells_the_customer_to_come_back", "test_redis_down_is_not_a_5xx",  # a fakeredis outage
    "test_once_per_message_on_a_real_redis_too",  # on the cluster already (any_redis)
)))
