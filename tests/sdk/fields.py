"""Which fields of the seed cloud's SDK models `vpcflow serve` fills: every
field of every model its v2 and v3 clients read back (flow logs, VPCs,
subnets, ports, security groups and their rules, network ACLs as
firewalls and their rules), as `model field filled|some K/N|empty`: in
every object read, in K of N (where the resource has it), in none.

    python fields.py ENDPOINT PROJECT AK SK
"""
import sys

from huaweicloudsdkvpc import v2, v3
from sdk_checks import client

endpoint, project, ak, sk = sys.argv[1:5]
c2, c3 = (client(k, endpoint, ak, sk, project) for k in (v2.VpcClient, v3.VpcClient))
groups = c2.list_security_groups(v2.ListSecurityGroupsRequest()).security_groups
firewalls = [c3.show_firewall(v3.ShowFirewallRequest(firewall_id=f.id)).firewall
             for f in c3.list_firewall(v3.ListFirewallRequest()).firewalls]
models = [
    ("FlowLogResp", c2.list_flow_logs(v2.ListFlowLogsRequest()).flow_logs),
    ("Vpc", c2.list_vpcs(v2.ListVpcsRequest()).vpcs),
    ("Subnet", c2.list_subnets(v2.ListSubnetsRequest()).subnets),
    ("Port", c2.list_ports(v2.ListPortsRequest()).ports),
    ("SecurityGroup", groups),
    ("SecurityGroupRule", c2.list_security_group_rules(
        v2.ListSecurityGroupRulesRequest()).security_group_rules),
    ("FirewallDetail", firewalls),
    ("FirewallRuleDetail", [r for f in firewalls for r in f.ingress_rules + f.egress_rules]),
]
for name, objects in models:
    if not objects:
        print(f"{name} (none to read)")
        continue
    for field in type(objects[0]).openapi_types:
        k = sum(getattr(o, field) not in (None, "") for o in objects)
        said = "filled" if k == len(objects) else f"some {k}/{len(objects)}" if k else "empty"
        print(f"{name} {field} {said}")
