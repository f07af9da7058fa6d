/* A thin C shim over libipt 2.0's packet encoder and decoder, so the Rust
 * tests see flat records instead of libipt's unions and bitfields.
 * Decoding follows ptdump's loop: sync forward, decode until an error,
 * record the error and its offset, resync, go on. */
#include <intel-pt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct shim_rec {
	uint32_t kind;   /* 0 packet, 1 error, 2 first sync */
	uint32_t type;   /* enum pt_packet_type, or the pt_error_code */
	uint32_t size;
	uint32_t flags;
	uint64_t a, b;
	uint64_t offset;
	uint64_t resync; /* for errors: where decoding resumed, UINT64_MAX if nowhere */
};

static void to_rec(const struct pt_packet *p, struct shim_rec *r)
{
	r->type = p->type;
	r->size = p->size;
	r->flags = 0;
	r->a = r->b = 0;
	switch (p->type) {
	case ppt_tnt_8: case ppt_tnt_64:
		r->a = p->payload.tnt.payload; r->flags = p->payload.tnt.bit_size; break;
	case ppt_fup: case ppt_tip: case ppt_tip_pge: case ppt_tip_pgd:
		r->a = p->payload.ip.ip; r->b = p->payload.ip.ipc; break;
	case ppt_mode:
		r->b = p->payload.mode.leaf;
		if (p->payload.mode.leaf == pt_mol_exec)
			r->flags = p->payload.mode.bits.exec.csl | p->payload.mode.bits.exec.csd << 1;
		else
			r->flags = p->payload.mode.bits.tsx.intx | p->payload.mode.bits.tsx.abrt << 1;
		break;
	case ppt_pip: r->a = p->payload.pip.cr3; r->flags = p->payload.pip.nr; break;
	case ppt_tsc: r->a = p->payload.tsc.tsc; break;
	case ppt_cbr: r->a = p->payload.cbr.ratio; break;
	case ppt_tma: r->a = p->payload.tma.ctc; r->b = p->payload.tma.fc; break;
	case ppt_mtc: r->a = p->payload.mtc.ctc; break;
	case ppt_cyc: r->a = p->payload.cyc.value; break;
	case ppt_vmcs: r->a = p->payload.vmcs.base; break;
	case ppt_mnt: r->a = p->payload.mnt.payload; break;
	case ppt_exstop: r->flags = p->payload.exstop.ip; break;
	case ppt_mwait: r->a = p->payload.mwait.hints; r->b = p->payload.mwait.ext; break;
	case ppt_pwre:
		r->a = p->payload.pwre.state; r->b = p->payload.pwre.sub_state;
		r->flags = p->payload.pwre.hw; break;
	case ppt_pwrx:
		r->a = p->payload.pwrx.last; r->b = p->payload.pwrx.deepest;
		r->flags = p->payload.pwrx.interrupt | p->payload.pwrx.store << 1 |
			   p->payload.pwrx.autonomous << 2;
		break;
	case ppt_ptw:
		r->a = p->payload.ptw.payload; r->b = p->payload.ptw.plc;
		r->flags = p->payload.ptw.ip; break;
	default: break;
	}
}

static void from_rec(const struct shim_rec *r, struct pt_packet *p)
{
	memset(p, 0, sizeof(*p));
	p->type = (enum pt_packet_type) r->type;
	switch (p->type) {
	case ppt_tnt_8: case ppt_tnt_64:
		p->payload.tnt.payload = r->a; p->payload.tnt.bit_size = (uint8_t) r->flags; break;
	case ppt_fup: case ppt_tip: case ppt_tip_pge: case ppt_tip_pgd:
		p->payload.ip.ip = r->a; p->payload.ip.ipc = (enum pt_ip_compression) r->b; break;
	case ppt_mode:
		p->payload.mode.leaf = (enum pt_mode_leaf) r->b;
		if (r->b == pt_mol_exec) {
			p->payload.mode.bits.exec.csl = r->flags & 1;
			p->payload.mode.bits.exec.csd = (r->flags >> 1) & 1;
		} else {
			p->payload.mode.bits.tsx.intx = r->flags & 1;
			p->payload.mode.bits.tsx.abrt = (r->flags >> 1) & 1;
		}
		break;
	case ppt_pip: p->payload.pip.cr3 = r->a; p->payload.pip.nr = r->flags & 1; break;
	case ppt_tsc: p->payload.tsc.tsc = r->a; break;
	case ppt_cbr: p->payload.cbr.ratio = (uint8_t) r->a; break;
	case ppt_tma: p->payload.tma.ctc = (uint16_t) r->a; p->payload.tma.fc = (uint16_t) r->b; break;
	case ppt_mtc: p->payload.mtc.ctc = (uint8_t) r->a; break;
	case ppt_cyc: p->payload.cyc.value = r->a; break;
	case ppt_vmcs: p->payload.vmcs.base = r->a; break;
	case ppt_mnt: p->payload.mnt.payload = r->a; break;
	case ppt_exstop: p->payload.exstop.ip = r->flags & 1; break;
	case ppt_mwait: p->payload.mwait.hints = (uint32_t) r->a; p->payload.mwait.ext = (uint32_t) r->b; break;
	case ppt_pwre:
		p->payload.pwre.state = (uint8_t) r->a; p->payload.pwre.sub_state = (uint8_t) r->b;
		p->payload.pwre.hw = r->flags & 1; break;
	case ppt_pwrx:
		p->payload.pwrx.last = (uint8_t) r->a; p->payload.pwrx.deepest = (uint8_t) r->b;
		p->payload.pwrx.interrupt = r->flags & 1;
		p->payload.pwrx.store = (r->flags >> 1) & 1;
		p->payload.pwrx.autonomous = (r->flags >> 2) & 1;
		break;
	case ppt_ptw:
		p->payload.ptw.payload = r->a; p->payload.ptw.plc = (uint8_t) r->b;
		p->payload.ptw.ip = r->flags & 1; break;
	default: break;
	}
}

/* Encodes n records into buf; returns bytes written or a negative pt error
 * code; *failed is the index of the record libipt refused. */
int64_t shim_encode(const struct shim_rec *recs, size_t n, uint8_t *buf, size_t cap,
		    size_t *failed)
{
	struct pt_config config;
	struct pt_encoder *enc;
	uint64_t off = 0;
	size_t i;

	pt_config_init(&config);
	config.begin = buf;
	config.end = buf + cap;
	enc = pt_alloc_encoder(&config);
	if (!enc)
		return -pte_nomem;
	for (i = 0; i < n; i++) {
		struct pt_packet p;
		int err;

		from_rec(&recs[i], &p);
		err = pt_enc_next(enc, &p);
		if (err < 0) {
			*failed = i;
			pt_free_encoder(enc);
			return err;
		}
	}
	pt_enc_get_offset(enc, &off);
	pt_free_encoder(enc);
	return (int64_t) off;
}

/* Decodes a trace the ptdump way into at most cap records; returns the
 * number of records (or a negative pt error code for a shim failure). */
int64_t shim_decode(const uint8_t *trace, size_t len, struct shim_rec *out, size_t cap)
{
	struct pt_config config;
	struct pt_packet_decoder *dec;
	uint8_t *buf;
	size_t n = 0;
	int err;

	/* An aligned private copy with a zero guard byte: libipt's PSB search
	 * may peek one byte past the end. */
	buf = malloc(len + 16);
	if (!buf)
		return -pte_nomem;
	memcpy(buf, trace, len);
	memset(buf + len, 0, 16);

	pt_config_init(&config);
	config.begin = buf;
	config.end = buf + len;
	dec = pt_pkt_alloc_decoder(&config);
	if (!dec) {
		free(buf);
		return -pte_nomem;
	}
	err = pt_pkt_sync_forward(dec);
	if (n < cap) {
		uint64_t off = UINT64_MAX;
		if (err >= 0)
			pt_pkt_get_sync_offset(dec, &off);
		memset(&out[n], 0, sizeof(out[n]));
		out[n].kind = 2;
		out[n].offset = off;
		n++;
	}
	while (err >= 0 && n < cap) {
		struct pt_packet p;
		uint64_t off = 0;

		pt_pkt_get_offset(dec, &off);
		err = pt_pkt_next(dec, &p, sizeof(p));
		if (err >= 0) {
			to_rec(&p, &out[n]);
			out[n].kind = 0;
			out[n].offset = off;
			out[n].resync = 0;
			n++;
			continue;
		}
		if (err == -pte_eos && off >= len)
			break;
		memset(&out[n], 0, sizeof(out[n]));
		out[n].kind = 1;
		out[n].type = (uint32_t) -err;
		out[n].offset = off;
		err = pt_pkt_sync_forward(dec);
		out[n].resync = UINT64_MAX;
		if (err >= 0)
			pt_pkt_get_sync_offset(dec, &out[n].resync);
		n++;
	}
	pt_pkt_free_decoder(dec);
	free(buf);
	return (int64_t) n;
}

/* Decodes the whole trace as fast as libipt can (for the benchmark):
 * returns the number of packets, errors resynchronised over. */
int64_t shim_count(const uint8_t *buf, size_t len)
{
	struct pt_config config;
	struct pt_packet_decoder *dec;
	int64_t count = 0;
	int err;

	pt_config_init(&config);
	config.begin = (uint8_t *) buf;
	config.end = (uint8_t *) buf + len;
	dec = pt_pkt_alloc_decoder(&config);
	if (!dec)
		return -pte_nomem;
	err = pt_pkt_sync_forward(dec);
	while (err >= 0) {
		struct pt_packet p;

		err = pt_pkt_next(dec, &p, sizeof(p));
		if (err >= 0) {
			count++;
			continue;
		}
		if (err == -pte_eos)
			break;
		err = pt_pkt_sync_forward(dec);
	}
	pt_pkt_free_decoder(dec);
	return count;
}

/* libipt's instruction-flow decoder over a code image held in memory:
 * the independent check that a synthesised trace is a valid trace of that
 * code. Returns the number of instructions, or a negative error code;
 * *errors counts decode errors (each followed by a resync), *first_error
 * is the first one's code. */
struct shim_image {
	const uint8_t *code;
	size_t len;
	uint64_t base;
};

static int shim_read_mem(uint8_t *buffer, size_t size, const struct pt_asid *asid,
			 uint64_t ip, void *context)
{
	const struct shim_image *im = context;
	size_t off, n;

	(void) asid;
	if (ip < im->base || ip >= im->base + im->len)
		return -pte_nomap;
	off = (size_t) (ip - im->base);
	n = im->len - off;
	if (n > size)
		n = size;
	memcpy(buffer, im->code + off, n);
	return (int) n;
}

int64_t shim_insn_count(const uint8_t *trace, size_t len, const uint8_t *code,
			size_t code_len, uint64_t base, int64_t *errors, int32_t *first_error)
{
	struct pt_config config;
	struct pt_insn_decoder *dec;
	struct shim_image im = { code, code_len, base };
	int64_t count = 0;
	uint8_t *buf;
	int status;

	*errors = 0;
	*first_error = 0;
	buf = malloc(len + 16);
	if (!buf)
		return -pte_nomem;
	memcpy(buf, trace, len);
	memset(buf + len, 0, 16);
	pt_config_init(&config);
	config.begin = buf;
	config.end = buf + len;
	dec = pt_insn_alloc_decoder(&config);
	if (!dec) {
		free(buf);
		return -pte_nomem;
	}
	pt_image_set_callback(pt_insn_get_image(dec), shim_read_mem, &im);
	for (;;) {
		status = pt_insn_sync_forward(dec);
		if (status < 0)
			break;
		for (;;) {
			struct pt_insn insn;

			while (status & pts_event_pending) {
				struct pt_event ev;

				status = pt_insn_event(dec, &ev, sizeof(ev));
				if (status < 0)
					break;
			}
			if (status < 0)
				break;
			status = pt_insn_next(dec, &insn, sizeof(insn));
			if (status < 0)
				break;
			count++;
		}
		if (status == -pte_eos)
			break;
		if (!*errors)
			*first_error = -status;
		(*errors)++;
	}
	pt_insn_free_decoder(dec);
	free(buf);
	return count;
}

/* CPU time of the calling thread in nanoseconds: the benchmark's clock, so
 * figures do not depend on how busy the rest of the machine is. */
#include <time.h>
uint64_t shim_thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}
