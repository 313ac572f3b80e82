"""The seed cloud's Python SDK (huaweicloudsdkvpc, its v3 VpcClient),
unchanged, against `vpcflow serve`: network ACLs on the cloud's own path
and in its shape (its "firewalls"), signed with an access key. Made,
listed, renamed, given rules (inserted, updated, removed), associated with
a subnet, which then shows the ACL, and deleted.

    python firewalls.py ENDPOINT PROJECT AK SK SUBNET

Prints one line per check; exits non-zero at the first that fails.
"""
import sys

from sdk_checks import check, filled, refused
from sdk_checks import client as sdk_client
from huaweicloudsdkvpc.v3 import (
    AddFirewallRulesRequest, AddFirewallRulesRequestBody, AssociateSubnetFirewallRequest,
    AssociateSubnetFirewallRequestBody, CreateFirewallOption, CreateFirewallRequest,
    CreateFirewallRequestBody, DeleteFirewallRequest, DisassociateSubnetFirewallRequest,
    DisassociateSubnetFirewallRequestBody, FirewallAssociation, FirewallInsertRuleItemOption,
    FirewallInsertRuleOption, FirewallRemoveRuleItemOption, FirewallRemoveRuleOption,
    FirewallUpdateRuleItemOption, FirewallUpdateRuleOption, ListFirewallRequest,
    RemoveFirewallRulesRequest, RemoveFirewallRulesRequestBody, ShowFirewallRequest,
    UpdateFirewallOption, UpdateFirewallRequest, UpdateFirewallRequestBody,
    UpdateFirewallRulesRequest, UpdateFirewallRulesRequestBody, VpcClient,
)

endpoint, project, ak, sk, subnet = sys.argv[1:6]


c = sdk_client(VpcClient, endpoint, ak, sk, project)
listed = c.list_firewall(ListFirewallRequest()).firewalls
filled("the inventory's ACLs", listed, ["id", "name", "project_id", "created_at", "updated_at",
                                        "admin_state_up", "status", "enterprise_project_id",
                                        "associations", "type"], nothing=(None, ""))
fw = c.create_firewall(CreateFirewallRequest(body=CreateFirewallRequestBody(
    firewall=CreateFirewallOption(name="sdk-acl", description="made by the SDK")))).firewall
check(f"created: {fw.id} {fw.status}", fw.name == "sdk-acl" and fw.ingress_rules == []
      and fw.admin_state_up is True)
refused("admin_state_up false", lambda: c.create_firewall(CreateFirewallRequest(
    body=CreateFirewallRequestBody(firewall=CreateFirewallOption(name="off", admin_state_up=False)))),
        400, "VPC.3001")
c.update_firewall(UpdateFirewallRequest(firewall_id=fw.id, body=UpdateFirewallRequestBody(
    firewall=UpdateFirewallOption(name="sdk-acl-renamed"))))
check("renamed", c.show_firewall(ShowFirewallRequest(firewall_id=fw.id)).firewall.name
      == "sdk-acl-renamed")
rule = lambda name, action, port: FirewallInsertRuleItemOption(
    name=name, action=action, protocol="tcp", ip_version=4, source_ip_address="0.0.0.0/0",
    destination_port=port, enabled=True)
fw = c.add_firewall_rules(AddFirewallRulesRequest(firewall_id=fw.id, body=AddFirewallRulesRequestBody(
    firewall=FirewallInsertRuleOption(ingress_rules=[rule("no-telnet", "deny", "23"),
                                                     rule("web", "allow", "80-443")],
                                      egress_rules=[FirewallInsertRuleItemOption(
                                          name="out", action="allow", destination_ip_address="0.0.0.0/0")])))).firewall
filled("rules inserted", fw.ingress_rules + fw.egress_rules,
       ["id", "name", "action", "protocol", "ip_version", "enabled"], nothing=(None, ""))
check(f"in order: {[r.name for r in fw.ingress_rules]}",
      [r.name for r in fw.ingress_rules] == ["no-telnet", "web"]
      and fw.ingress_rules[1].destination_port == "80-443")
first = fw.ingress_rules[0].id
fw = c.add_firewall_rules(AddFirewallRulesRequest(firewall_id=fw.id, body=AddFirewallRulesRequestBody(
    firewall=FirewallInsertRuleOption(ingress_rules=[rule("ssh", "allow", "22")],
                                      insert_after_rule=first)))).firewall
check(f"inserted after the first: {[r.name for r in fw.ingress_rules]}",
      [r.name for r in fw.ingress_rules] == ["no-telnet", "ssh", "web"])
refused("a rule that does not parse", lambda: c.add_firewall_rules(AddFirewallRulesRequest(
    firewall_id=fw.id, body=AddFirewallRulesRequestBody(firewall=FirewallInsertRuleOption(
        ingress_rules=[rule("bad", "maybe", "22")])))), 400, "VPC.3001")
fw = c.update_firewall_rules(UpdateFirewallRulesRequest(firewall_id=fw.id, body=UpdateFirewallRulesRequestBody(
    firewall=FirewallUpdateRuleOption(ingress_rules=[FirewallUpdateRuleItemOption(
        id=first, action="allow", destination_port="2323")])))).firewall
check("rule updated", fw.ingress_rules[0].action == "allow"
      and fw.ingress_rules[0].destination_port == "2323" and fw.ingress_rules[0].name == "no-telnet")
fw = c.remove_firewall_rules(RemoveFirewallRulesRequest(firewall_id=fw.id, body=RemoveFirewallRulesRequestBody(
    firewall=FirewallRemoveRuleOption(ingress_rules=[FirewallRemoveRuleItemOption(id=first)])))).firewall
check(f"rule removed: {[r.name for r in fw.ingress_rules]}",
      [r.name for r in fw.ingress_rules] == ["ssh", "web"])
fw = c.associate_subnet_firewall(AssociateSubnetFirewallRequest(
    firewall_id=fw.id, body=AssociateSubnetFirewallRequestBody(
        subnets=[FirewallAssociation(virsubnet_id=subnet)]))).firewall
check(f"associated: {[a.virsubnet_id for a in fw.associations]}",
      [a.virsubnet_id for a in fw.associations] == [subnet])
shown = c.show_firewall(ShowFirewallRequest(firewall_id=fw.id)).firewall
check("shown with its subnet", [a.virsubnet_id for a in shown.associations] == [subnet])
refused("an ACL in use", lambda: c.delete_firewall(DeleteFirewallRequest(firewall_id=fw.id)),
        409, "VPC.0409")
fw = c.disassociate_subnet_firewall(DisassociateSubnetFirewallRequest(
    firewall_id=fw.id, body=DisassociateSubnetFirewallRequestBody(
        subnets=[FirewallAssociation(virsubnet_id=subnet)]))).firewall
check("disassociated", fw.associations == [])
c.delete_firewall(DeleteFirewallRequest(firewall_id=fw.id))
refused("deleted", lambda: c.show_firewall(ShowFirewallRequest(firewall_id=fw.id)), 404, "VPC.0404")
print("all checks passed")
