"""The seed cloud's Python SDK (huaweicloudsdkvpc, its v2 VpcClient),
unchanged, against `vpcflow serve`: every flow-log operation signed with an
access key (SDK-HMAC-SHA256), sync and async; a wrong secret and another
project's key refused with the gateway's code.

    python flow_logs.py ENDPOINT PROJECT AK SK OTHER_PROJECT OTHER_AK OTHER_SK

Prints one line per check; exits non-zero at the first that fails.
"""
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkvpc.v2 import (
    CreateFlowLogReq, CreateFlowLogReqBody, CreateFlowLogRequest, DeleteFlowLogRequest,
    ListFlowLogsRequest, ListPortsRequest, ListSecurityGroupsRequest, ListSubnetsRequest,
    ListVpcsRequest, ShowFlowLogRequest, ShowQuotaRequest, CreatePortRequest,
    CreatePortRequestBody, CreatePortOption, FixedIp, ShowPortRequest, DeletePortRequest, UpdateFlowLogReq, UpdateFlowLogReqBody,
    UpdateFlowLogRequest, VpcAsyncClient, VpcClient,
)

endpoint, project, ak, sk, other_project, other_ak, other_sk = sys.argv[1:8]
PORT = "1d515d18-1b36-47dc-a983-bd6512aed4bd"
GROUP = "a1b2c3d4-0000-4000-8000-000000000001"
TOPIC = "a1b2c3d4-0000-4000-8000-000000000002"


def client(key, secret, project_id, kind=VpcClient):
    return (kind.new_builder()
            .with_credentials(BasicCredentials(key, secret, project_id))
            .with_endpoints([endpoint])
            .build())


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        sys.exit(1)


def refused(what, call, status, code):
    try:
        call()
    except ClientRequestException as e:
        check(f"{what}: {e.status_code} {e.error_code} {e.error_msg}",
              e.status_code == status and e.error_code == code)
        return
    check(f"{what}: not refused", False)


c = client(ak, sk, project)
before = c.list_flow_logs(ListFlowLogsRequest()).flow_logs
check(f"list: {len(before)} flow logs", len(before) >= 1)
# `Port`, as the SDK documents it; `index_enabled`, which it can send.
created = c.create_flow_log(CreateFlowLogRequest(body=CreateFlowLogReqBody(flow_log=CreateFlowLogReq(
    name="sdk-made", description="through the SDK", resource_type="Port", resource_id=PORT,
    traffic_type="reject", log_group_id=GROUP, log_topic_id=TOPIC, index_enabled=True)))).flow_log
check(f"create: {created.id} {created.status}",
      created.name == "sdk-made" and created.traffic_type == "reject" and created.resource_id == PORT
      and created.resource_type == "port")
# Every field the SDK's model has is filled.
empty = [a for a in type(created).openapi_types if getattr(created, a) is None]
check(f"every FlowLogResp field filled ({', '.join(type(created).openapi_types)}); empty: {empty}",
      not empty and created.tenant_id == project and created.log_store_type == "lts")
shown = c.show_flow_log(ShowFlowLogRequest(flowlog_id=created.id)).flow_log
check(f"show: {shown.name} {shown.status}", shown.id == created.id and shown.status == "ACTIVE")
updated = c.update_flow_log(UpdateFlowLogRequest(flowlog_id=created.id, body=UpdateFlowLogReqBody(
    flow_log=UpdateFlowLogReq(name="sdk-renamed", admin_state=False)))).flow_log
check(f"update: {updated.name} {updated.admin_state} {updated.status}",
      updated.name == "sdk-renamed" and updated.admin_state is False and updated.status == "DOWN")
filtered = c.list_flow_logs(ListFlowLogsRequest(traffic_type="reject", resource_id=PORT)).flow_logs
check(f"list filtered: {[f.name for f in filtered]}", "sdk-renamed" in [f.name for f in filtered])
for query, found in [
    (dict(tenant_id=project, log_store_type="lts", resource_type="Port"), True),
    (dict(tenant_id=other_project), False),
    (dict(log_store_type="obs"), False),
]:
    names = [f.name for f in c.list_flow_logs(ListFlowLogsRequest(**query)).flow_logs]
    check(f"list {query}: {names}", ("sdk-renamed" in names) == found)
quota = c.show_quota(ShowQuotaRequest(type="flow_log")).quotas.resources
check(f"quota: {[(q.type, q.used, q.quota) for q in quota]}",
      [(q.type, q.used, q.quota) for q in quota] == [("flow_log", len(before) + 1, 10)])
# Up to the quota of 10, then the SDK's exception with our code.
made = []
combos = [(port, traffic, topic) for port in (PORT, "7a2c9e41-5b3d-4f60-8e1a-2c4b6d8f0a13")
          for traffic in ("all", "accept") for topic in (TOPIC, "a1b2c3d4-0000-4000-8000-000000000003")]


def create(port, traffic, topic, i):
    return c.create_flow_log(CreateFlowLogRequest(body=CreateFlowLogReqBody(flow_log=CreateFlowLogReq(
        name=f"quota-{i}", resource_type="port", resource_id=port, traffic_type=traffic,
        log_group_id=GROUP, log_topic_id=topic)))).flow_log.id


for i, combo in enumerate(combos[:10 - len(before) - 1]):
    made.append(create(*combo, i))
refused("the eleventh flow log", lambda: create(*combos[-1], 99), 409, "VPC.3003")
for m in made:
    c.delete_flow_log(DeleteFlowLogRequest(flowlog_id=m))
c.delete_flow_log(DeleteFlowLogRequest(flowlog_id=created.id))
refused("show deleted", lambda: c.show_flow_log(ShowFlowLogRequest(flowlog_id=created.id)), 404, "VPC.3005")


# The async client answers with a future.
after = client(ak, sk, project, VpcAsyncClient).list_flow_logs_async(
    ListFlowLogsRequest()).result().flow_logs
check(f"async list: {len(after)} flow logs", [f.id for f in after] == [f.id for f in before])
refused("wrong secret", lambda: client(ak, sk[:-1] + ("A" if sk[-1] != "A" else "B"), project)
        .list_flow_logs(ListFlowLogsRequest()), 401, "APIGW.0301")
refused("unknown key", lambda: client("NOSUCHKEY0000000000", sk, project)
        .list_flow_logs(ListFlowLogsRequest()), 401, "APIGW.0301")
refused("another project's key", lambda: client(other_ak, other_sk, project)
        .list_flow_logs(ListFlowLogsRequest()), 403, "APIGW.0302")
# The model, read through the SDK's own models: the fields vpcflow knows
# are filled under the cloud's names.
def filled(what, objects, fields):
    empty = sorted({f for o in objects for f in fields if getattr(o, f) in (None, "", [])})
    check(f"{what}: {len(objects)}, {', '.join(fields)} filled; empty: {empty}", objects and not empty)


filled("vpcs", c.list_vpcs(ListVpcsRequest()).vpcs,
       ["id", "name", "cidr", "status", "tenant_id", "created_at", "updated_at"])
subnets = c.list_subnets(ListSubnetsRequest()).subnets
filled("subnets", subnets, ["id", "name", "cidr", "gateway_ip", "availability_zone", "vpc_id",
                            "status", "tenant_id", "neutron_network_id", "neutron_subnet_id"])
ports = c.list_ports(ListPortsRequest()).ports
filled("ports", ports, ["id", "network_id", "mac_address", "fixed_ips", "status",
                        "security_groups", "tenant_id", "admin_state_up"])
port = next(p for p in ports if p.id == PORT)
check(f"port fixed_ips: {[(f.subnet_id, f.ip_address) for f in port.fixed_ips]}",
      [f.ip_address for f in port.fixed_ips] == ["192.168.0.154"])
groups = c.list_security_groups(ListSecurityGroupsRequest()).security_groups
filled("security groups", groups, ["id", "name", "security_group_rules"])
rules = [r for g in groups for r in g.security_group_rules]
filled("security group rules", rules, ["id", "security_group_id", "direction", "ethertype", "tenant_id"])
# A port created as the SDK writes it (network_id, fixed_ips), read back.
subnet = port.network_id
made = c.create_port(CreatePortRequest(body=CreatePortRequestBody(port=CreatePortOption(
    name="sdk-port", network_id=subnet, fixed_ips=[FixedIp(ip_address="192.168.0.77", subnet_id=subnet)],
    security_groups=port.security_groups, admin_state_up=True)))).port
shown = c.show_port(ShowPortRequest(port_id=made.id)).port
check(f"port created: {shown.id} {shown.network_id} {[f.ip_address for f in shown.fixed_ips]}",
      shown.network_id == subnet and [f.ip_address for f in shown.fixed_ips] == ["192.168.0.77"]
      and shown.name == "sdk-port")
c.delete_port(DeletePortRequest(port_id=made.id))
refused("port deleted", lambda: c.show_port(ShowPortRequest(port_id=made.id)), 404, "VPC.0404")
print("all checks passed")
