"""The seed cloud's Python SDK (huaweicloudsdkvpc, its v2 VpcClient),
unchanged, against `vpcflow serve`: every flow-log operation signed with an
access key (SDK-HMAC-SHA256), sync and async; a wrong secret and another
project's key refused with the gateway's code.

    python flow_logs.py ENDPOINT PROJECT AK SK OTHER_PROJECT OTHER_AK OTHER_SK

Prints one line per check; exits non-zero at the first that fails.
"""
import sys

from sdk_checks import check, filled, refused
from sdk_checks import client as sdk_client
from huaweicloudsdkvpc.v2 import (
    CreateFlowLogReq, CreateFlowLogReqBody, CreateFlowLogRequest, DeleteFlowLogRequest,
    ListFlowLogsRequest, ListPortsRequest, ListSecurityGroupsRequest, ListSubnetsRequest,
    ListVpcsRequest, ShowFlowLogRequest, ShowQuotaRequest, CreatePortRequest,
    CreatePortRequestBody, CreatePortOption, FixedIp, ShowPortRequest, DeletePortRequest, UpdateFlowLogReq, UpdateFlowLogReqBody,
    UpdateFlowLogRequest, VpcAsyncClient, VpcClient,
    CreateVpcRequest, CreateVpcRequestBody, CreateVpcOption, ShowVpcRequest, DeleteVpcRequest,
    CreateSubnetRequest, CreateSubnetRequestBody, CreateSubnetOption, ShowSubnetRequest,
    UpdateSubnetRequest, UpdateSubnetRequestBody, UpdateSubnetOption, DeleteSubnetRequest,
    CreateSecurityGroupRequest, CreateSecurityGroupRequestBody, CreateSecurityGroupOption,
    DeleteSecurityGroupRequest, CreateSecurityGroupRuleRequest, CreateSecurityGroupRuleRequestBody,
    CreateSecurityGroupRuleOption, ListSecurityGroupRulesRequest, ShowSecurityGroupRuleRequest,
    DeleteSecurityGroupRuleRequest,
)

endpoint, project, ak, sk, other_project, other_ak, other_sk = sys.argv[1:8]
PORT = "1d515d18-1b36-47dc-a983-bd6512aed4bd"
GROUP = "a1b2c3d4-0000-4000-8000-000000000001"
TOPIC = "a1b2c3d4-0000-4000-8000-000000000002"


def client(key, secret, project_id, kind=VpcClient):
    return sdk_client(kind, endpoint, key, secret, project_id)


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
# A VPC, a subnet in it, a security group and its rules, made through the
# SDK as its documentation shows, then removed through it.
vpc = c.create_vpc(CreateVpcRequest(body=CreateVpcRequestBody(vpc=CreateVpcOption(
    cidr="10.77.0.0/16", name="sdk-vpc", description="made by the SDK")))).vpc
filled("vpc created", [vpc], ["id", "name", "cidr", "description", "status", "tenant_id",
                              "created_at", "updated_at"])
check(f"vpc shown: {vpc.id}", c.show_vpc(ShowVpcRequest(vpc_id=vpc.id)).vpc.cidr == "10.77.0.0/16")
sub = c.create_subnet(CreateSubnetRequest(body=CreateSubnetRequestBody(subnet=CreateSubnetOption(
    name="sdk-subnet", cidr="10.77.1.0/24", vpc_id=vpc.id, gateway_ip="10.77.1.1",
    availability_zone="ab-cdef-3a")))).subnet
filled("subnet created", [sub], ["id", "name", "cidr", "gateway_ip", "availability_zone", "vpc_id",
                                 "status", "tenant_id", "neutron_network_id", "neutron_subnet_id"])
refused("a subnet gateway that is not its first host", lambda: c.create_subnet(CreateSubnetRequest(
    body=CreateSubnetRequestBody(subnet=CreateSubnetOption(
        name="bad", cidr="10.77.2.0/24", vpc_id=vpc.id, gateway_ip="10.77.2.254")))), 400, "VPC.3001")
listed = c.list_subnets(ListSubnetsRequest(vpc_id=vpc.id)).subnets
check(f"subnets of the VPC: {[x.name for x in listed]}", [x.id for x in listed] == [sub.id])
c.update_subnet(UpdateSubnetRequest(vpc_id=vpc.id, subnet_id=sub.id, body=UpdateSubnetRequestBody(
    subnet=UpdateSubnetOption(name="sdk-subnet-renamed"))))
check("subnet renamed under its VPC's path",
      c.show_subnet(ShowSubnetRequest(subnet_id=sub.id)).subnet.name == "sdk-subnet-renamed")
sg = c.create_security_group(CreateSecurityGroupRequest(body=CreateSecurityGroupRequestBody(
    security_group=CreateSecurityGroupOption(name="sdk-sg", vpc_id=vpc.id)))).security_group
check(f"group created with the default rules: {len(sg.security_group_rules)}",
      len(sg.security_group_rules) == 4 and sg.name == "sdk-sg")
rule = c.create_security_group_rule(CreateSecurityGroupRuleRequest(
    body=CreateSecurityGroupRuleRequestBody(security_group_rule=CreateSecurityGroupRuleOption(
        security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="tcp",
        port_range_min=22, port_range_max=22, remote_ip_prefix="203.0.113.0/24",
        description="ssh from the office")))).security_group_rule
filled("rule created", [rule], ["id", "security_group_id", "direction", "ethertype", "protocol",
                                "port_range_min", "port_range_max", "remote_ip_prefix",
                                "description", "tenant_id"])
check(f"rule as written: {rule.protocol} {rule.port_range_min}-{rule.port_range_max}",
      rule.protocol == "tcp" and (rule.port_range_min, rule.port_range_max) == (22, 22)
      and rule.security_group_id == sg.id)
refused("a rule of an unknown protocol", lambda: c.create_security_group_rule(
    CreateSecurityGroupRuleRequest(body=CreateSecurityGroupRuleRequestBody(
        security_group_rule=CreateSecurityGroupRuleOption(
            security_group_id=sg.id, direction="ingress", protocol="nonsense",
            remote_ip_prefix="0.0.0.0/0")))), 400, "VPC.3001")
refused("a rule of an unknown group", lambda: c.create_security_group_rule(
    CreateSecurityGroupRuleRequest(body=CreateSecurityGroupRuleRequestBody(
        security_group_rule=CreateSecurityGroupRuleOption(
            security_group_id="no-such-group", direction="ingress",
            remote_ip_prefix="0.0.0.0/0")))), 404, "VPC.0404")
rules = c.list_security_group_rules(ListSecurityGroupRulesRequest(security_group_id=sg.id)) \
    .security_group_rules
check(f"the group's rules: {len(rules)}", len(rules) == 5 and rules[-1].id == rule.id)
shown = c.show_security_group_rule(ShowSecurityGroupRuleRequest(security_group_rule_id=rule.id)) \
    .security_group_rule
check(f"rule shown: {shown.id}", shown.remote_ip_prefix == "203.0.113.0/24")
c.delete_security_group_rule(DeleteSecurityGroupRuleRequest(security_group_rule_id=rule.id))
rules = c.list_security_group_rules(ListSecurityGroupRulesRequest(security_group_id=sg.id)) \
    .security_group_rules
check(f"rule deleted, the others kept their ids: {len(rules)}",
      [r.id for r in rules] == [r.id for r in sg.security_group_rules])
refused("rule gone", lambda: c.show_security_group_rule(
    ShowSecurityGroupRuleRequest(security_group_rule_id=rule.id)), 404, "VPC.0404")
c.delete_security_group(DeleteSecurityGroupRequest(security_group_id=sg.id))
c.delete_subnet(DeleteSubnetRequest(vpc_id=vpc.id, subnet_id=sub.id))
c.delete_vpc(DeleteVpcRequest(vpc_id=vpc.id))
refused("vpc deleted", lambda: c.show_vpc(ShowVpcRequest(vpc_id=vpc.id)), 404, "VPC.0404")
print("all checks passed")
