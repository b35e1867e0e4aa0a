"""Where housekeeping runs and what it reads: RDS Proxy decided on the connected host, the processlist source."""

from __future__ import annotations

from serverless_mysql.config import Config

PROXY = "shop.proxy-abc123xyz.us-east-1.rds.amazonaws.com"


def test_rds_proxy_is_decided_on_the_host_connected_to() -> None:
    from_secret = Config.from_options()  # no host given, as with a secret or a credentials provider: "localhost"
    assert from_secret.host == "localhost" and not from_secret.is_rds_proxy
    assert from_secret.rds_proxy_for(PROXY)  # the secret's host is a proxy endpoint
    assert not from_secret.rds_proxy_for("127.0.0.1")
    assert not from_secret.rds_proxy_for("mydb.cluster-abc.us-east-1.rds.amazonaws.com")
    # An explicit option wins over the host, either way.
    assert not Config.from_options(rds_proxy=False).rds_proxy_for(PROXY)
    assert Config.from_options(rds_proxy=True).rds_proxy_for("127.0.0.1")
