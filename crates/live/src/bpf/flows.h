/* The structures the TC program and the agent share (the agent reads the
 * same definitions from the program's BTF through the generated skeleton,
 * so they are written down once, here). Every field of a map key is
 * written (padding included): the kernel hashes the key's bytes. */
#ifndef VPCFLOW_FLOWS_H
#define VPCFLOW_FLOWS_H

/* One unidirectional IPv6 flow as one interface's hook saw it. */
struct flow_key {
	__u8 src[16];      /* IPv4 in the first 4 bytes, the rest zero */
	__u8 dst[16];
	__u32 ifindex;     /* the interface the packet crossed */
	__u16 src_port;    /* host order; 0 for protocols without ports */
	__u16 dst_port;
	__u8 protocol;     /* IANA protocol number */
	__u8 family;       /* 4 or 6 */
	__u8 egress;       /* 1: the interface's egress hook, 0: its ingress */
	__u8 icmp_type;    /* ICMPv6 message type (0 otherwise): neighbour
	                    * discovery and an echo between the same addresses
	                    * are different flows (SPEC 1, infrastructure) */
};

/* One unidirectional IPv4 flow: its own tables and a key of 20 bytes,
 * because the kernel hashes and compares every byte of a key for every
 * packet (a 44-byte key was a third of the program's time). */
struct flow_key4 {
	__u8 src[4];
	__u8 dst[4];
	__u32 ifindex;
	__u16 src_port;    /* host order; 0 for protocols without ports */
	__u16 dst_port;
	__u8 protocol;
	__u8 egress;
	__u8 pad[2];
};

/* Counters of a flow on one CPU (a CPU that never saw it has packets 0). */
struct flow_counts {
	__u64 packets;
	__u64 bytes;       /* layer-3 bytes (SPEC 2) */
	__u64 first_ns;    /* CLOCK_MONOTONIC of the first packet on this CPU */
	__u8 flags_any;    /* OR of the TCP flags */
	__u8 flags_all;    /* AND of the TCP flags */
	__u8 pad[6];
};

/* What could not be counted because the flow table was full. */
struct lost_counts {
	__u64 packets;
	__u64 bytes;
};

/* A first fragment, remembered so that later fragments get its ports. */
struct frag_key {
	__u8 src[16];
	__u8 dst[16];
	__u32 id;
	__u8 protocol;
	__u8 pad[3];
};

struct frag_ports {
	__u64 at_ns;
	__u16 src_port;
	__u16 dst_port;
	__u8 pad[4];
};

#endif
