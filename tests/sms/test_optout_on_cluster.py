"""tests/sms/test_optout.py again, with the app on a real Redis Cluster (tests/on_cluster.py)."""
from tests.on_cluster import again_on_cluster

globals().update(again_on_cluster("tests.sms.test_optout", without=(
    "test_with_redis_away_the_opt_out_asks_to_be_sent_again",  # a fakeredis outage
)))
