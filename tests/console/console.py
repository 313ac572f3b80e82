"""The web console of a real `vpcflow serve`, in headless Chromium.

Run by crates/vpcflow/tests/console.rs, which starts the server, makes the
tokens and the attack capture, and passes them here:

    console.py URL PROJECT TOKEN OTHER_TOKEN DEMO_PCAP ATTACK_PCAP SHOTS_DIR

Every expectation is read from the API beside the page (the console must
show what the API says), never written down here. Each step saves a
screenshot in SHOTS_DIR. Exit status 0 only if every step passed.
"""

import base64
import json
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, PROJECT, TOKEN, OTHER_TOKEN, DEMO, ATTACKS, SHOTS = sys.argv[1:8]
SHOTS = Path(SHOTS)
SHOTS.mkdir(parents=True, exist_ok=True)
GROUP = "a1b2c3d4-0000-4000-8000-000000000001"
TOPIC = "a1b2c3d4-0000-4000-8000-000000000002"  # the example VPC flow log's


def api(method, path, body=None, token=TOKEN, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("X-Auth-Token", token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(method, path, body=None, **kw):
    status, v = api(method, path, body, **kw)
    assert status == 200, (method, path, status, v)
    return v


def records_path(group=GROUP, topic=TOPIC):
    return f"/v1/{PROJECT}/log-groups/{group}/log-topics/{topic}/records"


def sql(text, **params):
    q = urllib.parse.urlencode({"sql": text, "limit": 10000, **params})
    return ok("GET", f"{records_path()}?{q}")["records"]


def quota_used():
    v = ok("GET", f"/v1/{PROJECT}/quotas?type=flow_log")
    return v["quotas"]["resources"][0]["used"]


def flow_logs(token=TOKEN, project=PROJECT):
    return ok("GET", f"/v1/{project}/fl/flow_logs", token=token)["flow_logs"]


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
profile = tempfile.mkdtemp(prefix="vpcflow-console-chromium-")
for arg in [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,800",
]:
    options.add_argument(arg)
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# A view redraws itself: an element found a moment ago may be gone.
wait = WebDriverWait(driver, 30, poll_frequency=0.1,
                     ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
console_log = []
passed = []


def shot(name):
    """The whole page, not only the window (Chrome's own capture)."""
    path = SHOTS / f"{len(passed) + 1:02d}-{name}.png"
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "format": "png"})
    path.write_bytes(base64.b64decode(png["data"]))
    return path


def collect_log():
    console_log.extend(driver.get_log("browser"))


def el(css):
    return wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def els(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def text_of(css):
    return el(css).text


def until(predicate, what):
    try:
        return wait.until(lambda d: predicate())
    except Exception as e:
        raise AssertionError(f"timed out waiting for {what}") from e


def open_view(fragment):
    """Opens a view afresh, as a shared link would, and waits until it is drawn."""
    driver.get("about:blank")
    driver.get(f"{URL}/#/{fragment}")
    until(lambda: driver.execute_script("return document.getElementById('main').dataset.ready"),
          f"view {fragment}")


def step(fn):
    name = fn.__name__
    started = time.monotonic()
    try:
        fn()
    except Exception:
        shot(f"{name}-FAILED")
        collect_log()
        print(f"FAILED: {name}", file=sys.stderr)
        print(driver.current_url, file=sys.stderr)
        print(driver.find_element(By.TAG_NAME, "body").text[:3000], file=sys.stderr)
        raise
    collect_log()
    path = shot(name)
    passed.append(name)
    print(f"ok {name} ({time.monotonic() - started:.1f} s, {path.name})", file=sys.stderr)


def sign_in(token):
    driver.get(f"{URL}/")
    box = el("#token")
    box.clear()
    box.send_keys(token)
    el("#sign-in").click()


def sign_in_with_a_project_token():
    sign_in("not-a-token")
    error = text_of("p.error")
    assert "APIGW.0301" in error and "unknown token" in error, error
    assert not driver.find_element(By.ID, "nav").is_displayed()
    sign_in(TOKEN)
    until(lambda: els("nav#nav a"), "the views' links")
    names = [a.text for a in els("nav#nav a")]
    assert names == ["Flow logs", "Records", "Charts", "Security"], names
    assert text_of("#who .project") == PROJECT
    assert driver.execute_script("return sessionStorage.getItem('vpcflow.token')") == TOKEN
    until(lambda: els("#flow-logs"), "the flow logs")


def create_rename_disable_and_delete_a_flow_log():
    open_view("flow-logs")
    used = quota_used()
    quota = el("#quota")
    assert quota.get_attribute("data-used") == str(used), quota.text
    assert f"{used} of 10" in quota.text, quota.text
    # Every flow log the API lists is a row, with its status.
    listed = {f["id"]: f for f in flow_logs()}
    rows = els("#flow-logs tbody tr")
    assert sorted(r.get_attribute("data-id") for r in rows) == sorted(listed), rows
    for r in rows:
        assert listed[r.get_attribute("data-id")]["status"] in r.text

    port = ok("GET", f"/v1/{PROJECT}/ports")["ports"][0]
    el("#new-name").send_keys("console-made")
    Select(el("#new-resource-type")).select_by_value("port")
    Select(el("#new-resource")).select_by_value(port["id"])
    Select(el("#new-traffic")).select_by_value("reject")
    Select(el("#new-topic")).select_by_value(f"{GROUP}\t{TOPIC}")
    el("#create").click()
    until(lambda: "console-made" in text_of("#flow-logs"), "the new flow log's row")
    made = [f for f in flow_logs() if f["name"] == "console-made"]
    assert len(made) == 1, made
    made = made[0]
    assert (made["resource_id"], made["traffic_type"], made["log_topic_id"]) == (port["id"], "reject", TOPIC)
    until(lambda: el("#quota").get_attribute("data-used") == str(used + 1), "the quota counting it")
    assert quota_used() == used + 1

    # The same again is refused, and the API's own words are shown.
    el("#new-name").send_keys("console-twice")
    Select(el("#new-resource-type")).select_by_value("port")
    Select(el("#new-resource")).select_by_value(port["id"])
    Select(el("#new-traffic")).select_by_value("reject")
    Select(el("#new-topic")).select_by_value(f"{GROUP}\t{TOPIC}")
    el("#create").click()
    status, refused = api("POST", f"/v1/{PROJECT}/fl/flow_logs", {"flow_log": {
        "name": "api-twice", "resource_type": "port", "resource_id": port["id"], "traffic_type": "reject",
        "log_group_id": GROUP, "log_topic_id": TOPIC}})
    assert status == 409, refused
    error = text_of("p.error")
    assert error == f"{refused['code']}: {refused['message']}", (error, refused)

    row = lambda: el(f"#flow-logs tr[data-id='{made['id']}']")
    row().find_element(By.XPATH, ".//button[text()='Rename']").click()
    box = row().find_element(By.CSS_SELECTOR, "input")
    box.clear()
    box.send_keys("console-renamed", Keys.ENTER)
    until(lambda: "console-renamed" in row().text, "the new name")
    assert ok("GET", f"/v1/{PROJECT}/fl/flow_logs/{made['id']}")["flow_log"]["name"] == "console-renamed"

    row().find_element(By.XPATH, ".//button[text()='Disable']").click()
    until(lambda: "DOWN" in row().text, "the DOWN status")
    shown = ok("GET", f"/v1/{PROJECT}/fl/flow_logs/{made['id']}")["flow_log"]
    assert (shown["admin_state"], shown["status"]) == (False, "DOWN"), shown
    row().find_element(By.XPATH, ".//button[text()='Enable']").click()
    until(lambda: "ACTIVE" in row().text, "the ACTIVE status")

    row().find_element(By.XPATH, ".//button[text()='Delete']").click()
    row().find_element(By.XPATH, ".//button[text()='Delete console-renamed']").click()
    until(lambda: not els(f"#flow-logs tr[data-id='{made['id']}']"), "the row gone")
    assert made["id"] not in {f["id"] for f in flow_logs()}
    until(lambda: el("#quota").get_attribute("data-used") == str(used), "the quota back")


def explore_the_uploaded_demo_capture():
    status, report = api("POST", f"/v1/{PROJECT}/captures", raw=Path(DEMO).read_bytes())
    assert status == 200, report
    expected = ok("GET", f"{records_path()}?limit=10000")["records"]
    assert expected, "the demo capture gave the VPC flow log records"
    open_view(f"records?group={GROUP}&topic={TOPIC}&range=all")
    rows = els("#records tbody tr")
    assert len(rows) == min(50, len(expected)), (len(rows), len(expected))
    heads = [th.text for th in els("#records thead th")]
    for name in ["interface-id", "srcaddr", "dstaddr", "action", "log-status", "direction", "decided-by", "rule-id"]:
        assert name in heads, heads
    first = dict(zip(heads, [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]))
    assert first["srcaddr"] == expected[0]["srcaddr"] and first["action"] == expected[0]["action"], first

    # The field names are offered as the search is typed.
    search = el("#search")
    search.send_keys("log-")
    until(lambda: [c.text for c in els("#field-names .chip")] == ["log-status"], "the log-status suggestion")
    el("#field-names .chip").click()
    assert search.get_attribute("value") == "log-status:", search.get_attribute("value")
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys("action:REJECT", Keys.ENTER)
    until(lambda: "search=action%3AREJECT" in driver.current_url, "the search in the URL")
    until(lambda: els("#records"), "the narrowed records")
    rejected = ok("GET", f"{records_path()}?limit=10000&search=action:REJECT")["records"]
    actions = [td.text for td in els("#records tbody td.action")]
    assert actions and set(actions) == {"REJECT"} and len(actions) == len(rejected), (actions, len(rejected))
    assert len(rejected) < len(expected)

    # The URL is the view: opened afresh, it shows the same.
    shared = driver.current_url
    driver.get("about:blank")
    driver.get(shared)
    until(lambda: len(els("#records tbody tr")) == len(rejected), "the shared view")
    assert el("#search").get_attribute("value") == "action:REJECT"


def draw_the_charts_with_the_apis_totals():
    open_view(f"charts?group={GROUP}&topic={TOPIC}&range=all")
    until(lambda: els("#subnet-matrix"), "the charts")
    totals = sql("SELECT count(*) AS n, sum(bytes) AS bytes, sum(packets) AS packets FROM records")[0]
    shown = el("#totals")
    assert shown.get_attribute("data-records") == str(totals["n"]), (shown.text, totals)
    assert shown.get_attribute("data-bytes") == str(totals["bytes"]), (shown.text, totals)
    assert shown.get_attribute("data-packets") == str(totals["packets"]), (shown.text, totals)
    for chart, column in [("#by-action", "action"), ("#by-direction", "direction")]:
        want = {r["k"]: r["b"] for r in sql(
            f"SELECT {column} AS k, sum(bytes) AS b FROM records WHERE {column} IS NOT NULL GROUP BY {column}")}
        figure = el(chart)
        assert json.loads(figure.get_attribute("data-series")) == want, (chart, want)
        assert figure.get_attribute("data-total") == str(sum(want.values()))
        assert figure.find_elements(By.CSS_SELECTOR, "svg rect.bar"), chart
    top = sql("SELECT srcaddr, sum(bytes) AS b FROM records WHERE srcaddr IS NOT NULL "
              "GROUP BY srcaddr ORDER BY b DESC, srcaddr LIMIT 10")
    labels = [a.text for a in els("#top-talkers .label")]
    assert labels == [r["srcaddr"] for r in top], (labels, top)
    rejected = sql("SELECT sum(packets) AS p FROM records WHERE action = 'REJECT'")[0]["p"]
    assert el("#rejected-sources").get_attribute("data-total") == str(rejected)
    assert int(el("#subnet-matrix").get_attribute("data-total")) > 0
    # Packets instead of bytes, from the URL.
    Select(el("#metric")).select_by_value("packets")
    until(lambda: "metric=packets" in driver.current_url, "the measure in the URL")
    until(lambda: els("#by-action") and el("#by-action").get_attribute("data-total") == str(totals["packets"]),
          "the packet totals")


def see_the_findings_of_an_attack():
    status, report = api("POST", f"/v1/{PROJECT}/captures", raw=Path(ATTACKS).read_bytes())
    assert status == 200, report
    path = f"/v1/{PROJECT}/log-groups/{GROUP}/log-topics/{TOPIC}/analysis"
    attacks = ok("GET", f"{path}/attacks")["findings"]
    rules = ok("GET", f"{path}/rules")["findings"]
    assert attacks and rules
    open_view(f"security?group={GROUP}&topic={TOPIC}&range=all")
    until(lambda: els("#security-summary"), "the findings")
    assert el("#security-summary").get_attribute("data-attacks") == str(len(attacks))
    for kind in {f["kind"] for f in attacks}:
        section = el(f"#attacks .finding[data-kind='{kind}']")
        want = len([f for f in attacks if f["kind"] == kind])
        assert len(section.find_elements(By.CSS_SELECTOR, "tbody tr")) == want, kind
    for kind in {f["kind"] for f in rules} - {"rule-hits"}:
        el(f"#rules .finding[data-kind='{kind}']")
    # Every rule's hit counter, per security group and ACL.
    hits = ok("GET", f"{path}/rules?hits=true")["findings"]
    per_policy = {}
    for f in hits:
        per_policy[f["policy-id"]] = per_policy.get(f["policy-id"], 0) + f["connections"]
    charts = {c.get_attribute("data-policy"): c.get_attribute("data-total") for c in els("#rule-hits .chart")}
    assert charts == {p: str(n) for p, n in per_policy.items()}, (charts, per_policy)
    # The least-privilege suggestion and its replay, as the API makes it.
    suggested = ok("GET", f"{path}/suggest")
    section = el("#suggestion")
    changes = [f for f in suggested["findings"] if f["kind"] == "suggested-change"]
    assert changes, suggested
    assert section.get_attribute("data-changes") == str(len(changes))
    assert section.get_attribute("data-checked") == str(suggested["suggestion"]["checked"])
    assert f"Replayed {suggested['suggestion']['checked']} accepted flows" in text_of("#replay")
    rows = els("#suggestion .finding[data-kind='suggested-change'] tbody tr")
    assert len(rows) == len(changes)
    el("#suggestion summary").click()
    assert text_of("#suggested-inventory") == suggested["suggestion"]["inventory"].strip()
    shot("security-findings")
    # A finding's records: its window and its source, in the explorer.
    scan = next(f for f in attacks if f["kind"] == "port-scan")
    row = el("#attacks .finding[data-kind='port-scan'] tbody tr")
    assert scan["srcaddr"] in row.text, row.text
    row.find_element(By.LINK_TEXT, "Records").click()
    until(lambda: "#/records" in driver.current_url and els("#records, #no-records"), "the finding's records")
    heads = [th.text for th in els("#records thead th")]
    column = heads.index("srcaddr") + 1
    srcs = {td.text for td in els(f"#records tbody tr td:nth-child({column})")}
    assert srcs == {scan["srcaddr"]}, srcs
    # Paging: the attack capture has more than a page.
    open_view(f"records?group={GROUP}&topic={TOPIC}&range=all")
    el("#next-page").click()
    until(lambda: text_of("#page-info").startswith("Records 51 to"), "the second page")


def follow_the_topic_live():
    open_view(f"records?group={GROUP}&topic={TOPIC}&range=all&live=1")
    until(lambda: "waiting" in text_of("#live-status"), "the live tail")
    status, report = api("POST", f"/v1/{PROJECT}/captures", raw=Path(DEMO).read_bytes())
    assert status == 200, report
    until(lambda: "closed with" in text_of("#live-status"), "a window from the tail")


def another_projects_token_sees_none_of_it():
    el("#who button").click()
    until(lambda: els("#token"), "the sign-in form")
    assert driver.execute_script("return sessionStorage.getItem('vpcflow.token')") is None
    sign_in(OTHER_TOKEN)
    until(lambda: els("#quota"), "the other project's flow logs")
    assert el("#quota").get_attribute("data-used") == "0"
    assert "No flow logs yet." in text_of("main")
    # The first project's shared view, with the other's token: nothing of it.
    open_view(f"records?group={GROUP}&topic={TOPIC}&range=all")
    body = text_of("main")
    assert "no log topics" in body, body
    assert not els("#records")
    source = driver.page_source
    for secret in ["vpc-all", "db-rejected", "192.168.0."]:
        assert secret not in source, secret
    el("#who button").click()
    sign_in(TOKEN)
    until(lambda: els("#flow-logs"), "signed in again")


def usable_on_a_narrow_window_and_by_keyboard():
    driver.set_window_size(420, 860)
    for view in [f"flow-logs", f"charts?group={GROUP}&topic={TOPIC}&range=all"]:
        open_view(view)
        if view.startswith("charts"):
            until(lambda: els("#subnet-matrix"), "the charts")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, (view, overflow)
    shot("narrow-charts")
    driver.set_window_size(1280, 800)
    open_view("flow-logs")
    # From the page's first stop (the skip link), Tab reaches every view.
    driver.execute_script("document.querySelector('a.skip').focus()")
    reached = []
    for _ in range(12):
        driver.switch_to.active_element.send_keys(Keys.TAB)
        a = driver.switch_to.active_element
        reached.append(a.text or a.get_attribute("id") or a.tag_name)
    for name in ["Flow logs", "Records", "Charts", "Security", "Sign out"]:
        assert name in reached, reached
    # Enter on a focused link follows it.
    while driver.switch_to.active_element.text != "Charts":
        driver.switch_to.active_element.send_keys(Keys.SHIFT, Keys.TAB)
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    until(lambda: "#/charts" in driver.current_url, "the charts by keyboard")


def no_console_errors():
    collect_log()
    # The refusals this test provoked are the API's answers (an unknown
    # token, a duplicate flow log): the browser logs those loads; nothing
    # else (a script error, a refused script or style) may be logged.
    provoked = ["status of 401", "status of 409"]
    errors = [e for e in console_log if e["level"] == "SEVERE"
              and not any(p in e["message"] for p in provoked)]
    assert not errors, errors
    assert any("status of 401" in e["message"] for e in console_log), "the log was read"


try:
    for fn in [
        sign_in_with_a_project_token,
        create_rename_disable_and_delete_a_flow_log,
        explore_the_uploaded_demo_capture,
        draw_the_charts_with_the_apis_totals,
        see_the_findings_of_an_attack,
        follow_the_topic_live,
        another_projects_token_sees_none_of_it,
        usable_on_a_narrow_window_and_by_keyboard,
        no_console_errors,
    ]:
        step(fn)
finally:
    driver.quit()
print(f"console: {len(passed)} steps passed, screenshots in {SHOTS}", file=sys.stderr)
