// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* vpcflow's in-kernel flow counter: a TC classifier on each monitored
 * port's interface, at ingress and egress, that adds every IP packet to a
 * per-flow counter in a per-CPU hash map.
 *
 * Guarantees:
 * - it never drops, delays, redirects or modifies a packet: it only reads
 *   (bpf_skb_load_bytes) and always returns TC_ACT_UNSPEC, so the next
 *   classifier (or the default) decides as if it were not there;
 * - every IP packet is counted exactly once, in the flow table of the
 *   generation it read; the agent flips `generation`, waits for programs
 *   already running to finish, then drains the other table;
 * - a packet that finds the table full is added to `lost_<gen>` for its
 *   interface, which the agent reports as SKIPDATA;
 * - memory is fixed when the program is loaded (preallocated maps).
 *
 * Cost (bench: `cargo bench -p vpcflow-live --features ebpf`): headers are
 * read straight from the packet's linear part (a helper call only when they
 * are not in it), one flow-table lookup per packet (an IPv4 flow's key is
 * 20 bytes, in tables of its own: the kernel hashes the whole key), the
 * clock read for a flow's first packet only, the fragment table only for
 * fragments.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flows.h"

#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXTENSIONS 6
#define FRAGMENT_LIFETIME_NS (30ULL * 1000 * 1000 * 1000)

/* Sizes the agent overrides before loading (bpf_map__set_max_entries). */
struct flow_table {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_counts);
};

struct flow_table4 {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key4);
	__type(value, struct flow_counts);
};

struct lost_table {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct lost_counts);
};

struct flow_table4 flows4_0 SEC(".maps");
struct flow_table4 flows4_1 SEC(".maps");
struct flow_table flows_0 SEC(".maps");
struct flow_table flows_1 SEC(".maps");
struct lost_table lost_0 SEC(".maps");
struct lost_table lost_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} fragments SEC(".maps");

/* Which table packets go to; written by the agent only. */
volatile __u32 generation = 0;

/* Copies `len` bytes at `off` of the packet: straight from the linear
 * part when they are in it (no helper call), else through the kernel (a
 * paged buffer). The bound on `off` is the verifier's: packet pointer
 * arithmetic needs a bounded offset; headers never start beyond it.
 * `dst` is 8-byte aligned (ALIGNED) and the packet is read as if it were:
 * clang then copies in words, not byte by byte (a third of the program's
 * instructions otherwise); the architectures the program runs on load
 * unaligned words, and the verifier checks packet alignment only when
 * asked to be strict. */
#define ALIGNED __attribute__((aligned(8)))
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *dst, __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	if (off < 512 && data + off + len <= end) {
		__builtin_memcpy(__builtin_assume_aligned(dst, 8),
				 __builtin_assume_aligned(data + off, 8), len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, dst, len);
}

static __always_inline int has_ports(__u8 protocol)
{
	return protocol == 6 || protocol == 17 || protocol == 33 || protocol == 132 ||
	       protocol == 136;
}

/* The fragment-table key of a packet (all of it written: it is hashed). */
static __always_inline void fragment_of(struct frag_key *fk, const struct flow_key *key, __u32 id)
{
	__builtin_memset(fk, 0, sizeof(*fk));
	__builtin_memcpy(fk->src, key->src, 16);
	__builtin_memcpy(fk->dst, key->dst, 16);
	fk->id = id;
	fk->protocol = key->protocol;
}

static __always_inline void add_lost(void *lost, __u32 ifindex, __u64 bytes)
{
	struct lost_counts *l = bpf_map_lookup_elem(lost, &ifindex);
	if (l) {
		l->packets += 1;
		l->bytes += bytes;
		return;
	}
	struct lost_counts fresh = { .packets = 1, .bytes = bytes };
	if (bpf_map_update_elem(lost, &ifindex, &fresh, BPF_NOEXIST) != 0) {
		/* Another CPU created it meanwhile: this CPU's slot is zeroed. */
		l = bpf_map_lookup_elem(lost, &ifindex);
		if (l) {
			l->packets += 1;
			l->bytes += bytes;
		}
	}
}

static __always_inline void add(void *flows, void *lost, void *key, __u32 ifindex, __u64 bytes,
				__u8 flags)
{
	struct flow_counts *c = bpf_map_lookup_elem(flows, key);
	if (!c) {
		/* A flow's first packet reads the precise clock (once per
		 * flow): the agent orders flows by it, and a request and its
		 * reply a few microseconds apart must not tie (stateful
		 * verdicts). Later packets read no clock at all: a record's
		 * times are its window's. */
		struct flow_counts fresh = {
			.packets = 1,
			.bytes = bytes,
			.first_ns = bpf_ktime_get_ns(),
			.flags_any = flags,
			.flags_all = flags,
		};
		if (bpf_map_update_elem(flows, key, &fresh, BPF_NOEXIST) == 0)
			return;
		/* Either another CPU inserted the flow just now (then this
		 * CPU's slot exists and is zeroed) or the table is full. */
		c = bpf_map_lookup_elem(flows, key);
		if (!c) {
			add_lost(lost, ifindex, bytes);
			return;
		}
	}
	if (c->packets == 0) {
		c->first_ns = bpf_ktime_get_ns();
		c->flags_all = flags;
	}
	c->packets += 1;
	c->bytes += bytes;
	c->flags_any |= flags;
	c->flags_all &= flags;
}

static __always_inline int count(struct __sk_buff *skb, __u8 egress)
{
	struct flow_key key;
	__builtin_memset(&key, 0, sizeof(key));
	key.ifindex = skb->ifindex;
	key.egress = egress;

	__u16 ethertype ALIGNED;
	__u32 off = 12;
	if (load(skb, off, &ethertype, 2))
		return TC_ACT_UNSPEC;
	off = 14;
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (ethertype != bpf_htons(ETH_P_8021Q) && ethertype != bpf_htons(ETH_P_8021AD))
			break;
		if (load(skb, off + 2, &ethertype, 2))
			return TC_ACT_UNSPEC;
		off += 4;
	}

	__u64 bytes;
	__u32 l4;
	__u32 frag_id = 0;
	__u16 frag_offset = 0;
	__u8 more_fragments = 0;
	if (ethertype == bpf_htons(ETH_P_IP)) {
		__u8 ip[20] ALIGNED;
		if (load(skb, off, ip, sizeof(ip)))
			return TC_ACT_UNSPEC;
		__u8 ihl = ip[0] & 0x0f;
		if ((ip[0] >> 4) != 4 || ihl < 5)
			return TC_ACT_UNSPEC;
		key.family = 4;
		__builtin_memcpy(key.src, &ip[12], 4);
		__builtin_memcpy(key.dst, &ip[16], 4);
		key.protocol = ip[9];
		bytes = ((__u16)ip[2] << 8) | ip[3];
		__u16 frag = ((__u16)ip[6] << 8) | ip[7];
		frag_offset = frag & 0x1fff;
		more_fragments = (frag & 0x2000) != 0;
		frag_id = ((__u32)ip[4] << 8) | ip[5];
		l4 = off + ihl * 4;
	} else if (ethertype == bpf_htons(ETH_P_IPV6)) {
		__u8 ip[40] ALIGNED;
		if (load(skb, off, ip, sizeof(ip)))
			return TC_ACT_UNSPEC;
		if ((ip[0] >> 4) != 6)
			return TC_ACT_UNSPEC;
		key.family = 6;
		__builtin_memcpy(key.src, &ip[8], 16);
		__builtin_memcpy(key.dst, &ip[24], 16);
		__u16 payload = ((__u16)ip[4] << 8) | ip[5];
		bytes = payload ? 40 + (__u64)payload : 0;
		__u8 next = ip[6];
		l4 = off + 40;
#pragma unroll
		for (int i = 0; i < MAX_IPV6_EXTENSIONS; i++) {
			__u8 ext[8] ALIGNED;
			if (next != 0 && next != 43 && next != 44 && next != 51 && next != 60)
				break;
			if (load(skb, l4, ext, sizeof(ext)))
				break;
			if (next == 44) {
				__u16 fo = ((__u16)ext[2] << 8) | ext[3];
				frag_offset = fo >> 3;
				more_fragments = fo & 1;
				frag_id = ((__u32)ext[4] << 24) | ((__u32)ext[5] << 16) |
					  ((__u32)ext[6] << 8) | ext[7];
				l4 += 8;
			} else if (next == 51) {
				l4 += ((__u32)ext[1] + 2) * 4;
			} else {
				l4 += ((__u32)ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		key.protocol = next;
	} else {
		return TC_ACT_UNSPEC;
	}
	/* A length field of 0 (segmentation offload, jumbograms): count what
	 * the packet carries. */
	if (bytes == 0)
		bytes = skb->len > off ? skb->len - off : 0;

	__u8 flags = 0;
	if (frag_offset != 0) {
		__u64 now = bpf_ktime_get_ns();
		struct frag_key fk;
		fragment_of(&fk, &key, frag_id);
		struct frag_ports *fp = bpf_map_lookup_elem(&fragments, &fk);
		if (fp && now - fp->at_ns <= FRAGMENT_LIFETIME_NS) {
			key.src_port = fp->src_port;
			key.dst_port = fp->dst_port;
		}
	} else if (has_ports(key.protocol)) {
		__u8 l4h[4] ALIGNED;
		__u8 tcp_flags ALIGNED;
		if (load(skb, l4, l4h, 4) == 0) {
			key.src_port = ((__u16)l4h[0] << 8) | l4h[1];
			key.dst_port = ((__u16)l4h[2] << 8) | l4h[3];
			if (key.protocol == 6 && load(skb, l4 + 13, &tcp_flags, 1) == 0)
				flags = tcp_flags;
		}
		if (more_fragments) {
			__u64 now = bpf_ktime_get_ns();
			struct frag_key fk;
			fragment_of(&fk, &key, frag_id);
			struct frag_ports fp = {
				.at_ns = now,
				.src_port = key.src_port,
				.dst_port = key.dst_port,
			};
			bpf_map_update_elem(&fragments, &fk, &fp, BPF_ANY);
		}
	} else if (key.protocol == 58) {
		/* Left 0 if the capture cut it: 0 is no ICMPv6 type. */
		__u8 icmp_type ALIGNED = 0;
		load(skb, l4, &icmp_type, 1);
		key.icmp_type = icmp_type;
	}

	__u32 gen = generation & 1;
	if (key.family == 4) {
		struct flow_key4 key4 = {
			.ifindex = key.ifindex,
			.src_port = key.src_port,
			.dst_port = key.dst_port,
			.protocol = key.protocol,
			.egress = egress,
		};
		__builtin_memcpy(key4.src, key.src, 4);
		__builtin_memcpy(key4.dst, key.dst, 4);
		if (gen)
			add(&flows4_1, &lost_1, &key4, key.ifindex, bytes, flags);
		else
			add(&flows4_0, &lost_0, &key4, key.ifindex, bytes, flags);
	} else if (gen) {
		add(&flows_1, &lost_1, &key, key.ifindex, bytes, flags);
	} else {
		add(&flows_0, &lost_0, &key, key.ifindex, bytes, flags);
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int count_ingress(struct __sk_buff *skb)
{
	return count(skb, 0);
}

SEC("tc")
int count_egress(struct __sk_buff *skb)
{
	return count(skb, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Does nothing: the benchmark's zero (the cost of running any program). */
SEC("tc")
int baseline(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}
