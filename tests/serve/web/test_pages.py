"""The storefront's pages over the fake engine: served, self-contained, and the report's files guarded.
(The browser tests in tests/e2e drive them over the real engine.)"""

from __future__ import annotations

import json

from shelfrank.evaluate.report import Section, write_report


def test_the_pages_and_their_static_files_are_served_with_a_same_origin_policy(fake_client):
    client, _ = fake_client()
    for path in ("/", "/operator", "/report"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "http://" not in r.text and "https://" not in r.text, path  # no external resource
    home = client.get("/").text
    assert 'id="storefront-config"' in home and '<option value="popularity">' in home
    for path in ("/static/storefront.js", "/static/operator.js", "/static/storefront.css"):
        assert client.get(path).status_code == 200, path
    assert not {"/", "/operator", "/report", "/web/items"} & set(client.get("/openapi.json").json()["paths"])


def test_the_report_page_renders_the_latest_report_or_says_how_to_write_one(fake_client):
    client, _ = fake_client()
    assert "No evaluation report yet" in client.get("/report").text
    folder = client.app.state.settings.store.data_dir / "reports" / "latest"
    folder.mkdir(parents=True)
    (folder / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    write_report(folder, "Evaluation", [Section("Curve", "text", [["a", "b"], [1, 2]], ["curve.png"])])
    (folder.parent / "secret.png").write_bytes(b"secret")
    page = client.get("/report").text
    assert '<img src="/report/files/curve.png" alt="curve"' in page and "<table>" in page
    assert client.get("/report/files/curve.png").content.startswith(b"\x89PNG")
    assert client.get("/report/files/../secret.png").status_code == 404
    assert client.get("/report/files/%2e%2e/secret.png").status_code == 404


def test_the_operator_item_lookup_needs_the_admin_token(fake_client):
    client, _ = fake_client()
    assert client.get("/web/items", params={"q": "x"}).status_code == 401


def test_the_storefront_sends_the_client_key_its_events_need(fake_client):
    client, _ = fake_client(client_key="store-frontend")
    home = client.get("/").text
    config = json.loads(home.split('id="storefront-config">', 1)[1].split("</script>", 1)[0])
    assert config["client_key"] == "store-frontend"
    script = client.get("/static/storefront.js").text
    assert "x-client-key" in script and "config.client_key" in script
    open_client, _ = fake_client()
    assert "client_key" not in open_client.get("/").text  # nothing to send when none is configured
