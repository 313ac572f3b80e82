//! The rule table: every security-group and network-ACL rule of an
//! inventory, plus the implicit decisions (default deny, always-allowed
//! traffic, stateful return), numbered so a flow can carry the rule that
//! decided it in 16 bits ([`RuleRef`]).

use crate::inventory::Inventory;
use crate::inventory::rules::RuleDirection;
use crate::policy::RuleRef;
use crate::schema::NOT_KNOWN;

/// Which check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A security group's ingress rules.
    SgIngress,
    /// A security group's egress rules.
    SgEgress,
    /// A network ACL's ingress rules.
    AclIngress,
    /// A network ACL's egress rules.
    AclEgress,
    /// Connection tracking: return traffic of an accepted connection.
    Conntrack,
}

impl Stage {
    /// The spelling of the `decided-by` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::SgIngress => "sg-ingress",
            Stage::SgEgress => "sg-egress",
            Stage::AclIngress => "acl-ingress",
            Stage::AclEgress => "acl-egress",
            Stage::Conntrack => "conntrack",
        }
    }
}

/// One entry of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Which check.
    pub stage: Stage,
    /// The security group or ACL id ([`NOT_KNOWN`] for none).
    pub owner: String,
    /// The rule id, or `default-deny`, `implicit-allow`, `stateful-return`,
    /// `tracked-connection`.
    pub id: String,
}

impl RuleInfo {
    /// The owner as records give it: absent for the built-in rules.
    pub fn policy_id(&self) -> Option<&str> {
        (self.owner != NOT_KNOWN).then_some(self.owner.as_str())
    }
}

/// Most rules a deployment may have (a [`RuleRef`] is 16 bits; 0 is none).
pub const MAX_RULES: usize = 65_000;

/// The numbered rules of an inventory.
#[derive(Debug, Clone, Default)]
pub struct RuleTable {
    rules: Vec<RuleInfo>,
    /// Per security group: index of its first rule.
    sg_base: Vec<u16>,
    /// Per ACL: first ingress rule, first egress rule, then its four specials.
    acl_base: Vec<(u16, u16, u16)>,
    /// Security-group default deny, ingress and egress; stateful return;
    /// tracked connection; security-group implicit allow, ingress and egress.
    globals: u16,
}

impl RuleTable {
    /// The table of an inventory (whose rule count was checked on load).
    pub fn from_inventory(inv: &Inventory) -> RuleTable {
        let mut t = RuleTable {
            rules: vec![RuleInfo {
                stage: Stage::Conntrack,
                owner: NOT_KNOWN.into(),
                id: NOT_KNOWN.into(),
            }],
            ..Default::default()
        };
        let push = |t: &mut RuleTable, stage, owner: &str, id: &str| {
            t.rules.push(RuleInfo {
                stage,
                owner: owner.to_string(),
                id: id.to_string(),
            });
        };
        t.globals = t.rules.len() as u16;
        push(&mut t, Stage::SgIngress, NOT_KNOWN, "default-deny");
        push(&mut t, Stage::SgEgress, NOT_KNOWN, "default-deny");
        push(&mut t, Stage::Conntrack, NOT_KNOWN, "stateful-return");
        push(&mut t, Stage::Conntrack, NOT_KNOWN, "tracked-connection");
        push(&mut t, Stage::SgIngress, NOT_KNOWN, "implicit-allow");
        push(&mut t, Stage::SgEgress, NOT_KNOWN, "implicit-allow");
        for g in &inv.security_groups {
            t.sg_base.push(t.rules.len() as u16);
            for r in &g.rules {
                let stage = match r.direction {
                    RuleDirection::Ingress => Stage::SgIngress,
                    RuleDirection::Egress => Stage::SgEgress,
                };
                push(&mut t, stage, &g.id, &r.id);
            }
        }
        for a in &inv.network_acls {
            let ingress = t.rules.len() as u16;
            for r in &a.ingress {
                push(&mut t, Stage::AclIngress, &a.id, &r.id);
            }
            let egress = t.rules.len() as u16;
            for r in &a.egress {
                push(&mut t, Stage::AclEgress, &a.id, &r.id);
            }
            let specials = t.rules.len() as u16;
            push(&mut t, Stage::AclIngress, &a.id, "default-deny");
            push(&mut t, Stage::AclEgress, &a.id, "default-deny");
            push(&mut t, Stage::AclIngress, &a.id, "implicit-allow");
            push(&mut t, Stage::AclEgress, &a.id, "implicit-allow");
            t.acl_base.push((ingress, egress, specials));
        }
        t
    }

    /// The entry of `r`, or `None` for [`RuleRef::NONE`] and unknown refs.
    pub fn get(&self, r: RuleRef) -> Option<&RuleInfo> {
        (r != RuleRef::NONE).then(|| self.rules.get(usize::from(r.0)))?
    }

    /// Every entry with its ref, rule NONE excluded.
    pub fn iter(&self) -> impl Iterator<Item = (RuleRef, &RuleInfo)> {
        self.rules
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, r)| (RuleRef(i as u16), r))
    }

    /// Number of refs in use, NONE included.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether only NONE is there.
    pub fn is_empty(&self) -> bool {
        self.rules.len() <= 1
    }

    /// Rule `index` (file order) of security group `group`.
    pub fn sg_rule(&self, group: usize, index: usize) -> RuleRef {
        RuleRef(self.sg_base[group] + index as u16)
    }

    /// No security-group rule matched.
    pub fn sg_default_deny(&self, direction: RuleDirection) -> RuleRef {
        RuleRef(
            self.globals
                + if direction == RuleDirection::Ingress {
                    0
                } else {
                    1
                },
        )
    }

    /// Return traffic of an accepted connection.
    pub fn stateful_return(&self) -> RuleRef {
        RuleRef(self.globals + 2)
    }

    /// A connection accepted before the rules changed, by a rule the new
    /// rules no longer have: tracked connections outlive rule changes.
    pub fn tracked_connection(&self) -> RuleRef {
        RuleRef(self.globals + 3)
    }

    /// Infrastructure traffic (SPEC §1), which every security group allows.
    pub fn sg_implicit_allow(&self, direction: RuleDirection) -> RuleRef {
        RuleRef(
            self.globals
                + if direction == RuleDirection::Ingress {
                    4
                } else {
                    5
                },
        )
    }

    /// Rule `index` of ACL `acl` in `direction`.
    pub fn acl_rule(&self, acl: usize, direction: RuleDirection, index: usize) -> RuleRef {
        let (i, e, _) = self.acl_base[acl];
        RuleRef(
            if direction == RuleDirection::Ingress {
                i
            } else {
                e
            } + index as u16,
        )
    }

    /// No rule of ACL `acl` matched.
    pub fn acl_default_deny(&self, acl: usize, direction: RuleDirection) -> RuleRef {
        let s = self.acl_base[acl].2;
        RuleRef(
            s + if direction == RuleDirection::Ingress {
                0
            } else {
                1
            },
        )
    }

    /// Traffic ACL `acl` always lets through (same subnet, 224.0.0.0/24,
    /// infrastructure traffic, ...).
    pub fn acl_implicit_allow(&self, acl: usize, direction: RuleDirection) -> RuleRef {
        let s = self.acl_base[acl].2;
        RuleRef(
            s + if direction == RuleDirection::Ingress {
                2
            } else {
                3
            },
        )
    }
}

/// Total rules an inventory's table will hold.
pub fn count(inv: &Inventory) -> usize {
    // NONE and the six globals.
    7 + inv
        .security_groups
        .iter()
        .map(|g| g.rules.len())
        .sum::<usize>()
        + inv
            .network_acls
            .iter()
            .map(|a| a.ingress.len() + a.egress.len() + 4)
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_numbers_every_rule_once() {
        let inv =
            Inventory::from_toml("vpc.toml", include_str!("../../../examples/vpc.toml")).unwrap();
        let t = RuleTable::from_inventory(&inv);
        assert_eq!(t.len(), count(&inv));
        let telnet = t.get(t.acl_rule(0, RuleDirection::Ingress, 0)).unwrap();
        assert_eq!(
            (telnet.stage, telnet.owner.as_str(), telnet.id.as_str()),
            (
                Stage::AclIngress,
                "0b9a7c3e-4f6d-4c7a-9a51-2d8f3e1c6b70",
                "no-telnet"
            )
        );
        let ssh_deny = t.get(t.sg_rule(0, 2)).unwrap();
        assert_eq!(ssh_deny.id, "6c5b4a39-8e7f-4d21-b0a9-c8d7e6f5a4b3/3");
        assert_eq!(ssh_deny.stage, Stage::SgIngress);
        assert_eq!(t.get(t.stateful_return()).unwrap().id, "stateful-return");
        assert_eq!(
            t.get(t.tracked_connection()).unwrap().id,
            "tracked-connection"
        );
        let sg_allow = t.get(t.sg_implicit_allow(RuleDirection::Ingress)).unwrap();
        assert_eq!(
            (sg_allow.stage, sg_allow.id.as_str()),
            (Stage::SgIngress, "implicit-allow")
        );
        assert_eq!(
            t.get(t.sg_implicit_allow(RuleDirection::Egress))
                .unwrap()
                .stage,
            Stage::SgEgress
        );
        assert_eq!(
            t.get(t.acl_implicit_allow(0, RuleDirection::Egress))
                .unwrap()
                .stage,
            Stage::AclEgress
        );
        assert!(t.get(RuleRef::NONE).is_none());
        let mut seen = std::collections::HashSet::new();
        for (_, r) in t.iter() {
            assert!(
                seen.insert((r.stage, r.owner.clone(), r.id.clone())),
                "{r:?} twice"
            );
        }
    }
}
