// nullfuse: the least any FUSE server can do per request, as a ceiling for `cowdisk attach` on this machine.
//
//   nullfuse MOUNTPOINT dev-fuse THREADS    one cloned /dev/fuse descriptor per thread, read(2) + writev(2)
//   nullfuse MOUNTPOINT io-uring ENTRIES    FUSE over io_uring: one pinned thread and ring per possible CPU,
//                                           ENTRIES registered entries each (needs enable_uring=1)
//
// The mount holds one file, "disk", of SIZE bytes (environment NULLFUSE_SIZE, default 1 GiB), opened with
// FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES and INIT flags ASYNC_DIO and MAX_PAGES, as cowdisk's are. A read
// answers with bytes that are never filled in (zeros over /dev/fuse, whatever the payload buffer holds over
// io_uring); a write is acknowledged and dropped. So a loop device on it measures the kernel's FUSE path and the
// transport alone: no mapping, no copy into the server's own buffers, no disk. It serves nothing a user wants.
// The process ends when the file system is unmounted. bench/run builds it with gcc and liburing.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_WRITE (1u << 20)
#define IN_BUFFER (MAX_WRITE + 4096)       // a request header and its arguments, then up to MAX_WRITE of data
#define URING_INIT_FLAG (1ull << 41)       // FUSE_OVER_IO_URING (flags2 bit 9); Debian 12's headers predate it
#define URING_CMD_REGISTER 1               // FUSE_IO_URING_CMD_REGISTER
#define URING_CMD_COMMIT_AND_FETCH 2       // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
#define ENT_HEADER 288                     // struct fuse_uring_req_header: in_out[128], op_in[128], ent_in_out[32]
#define ENT_OP_IN 128
#define ENT_COMMIT_ID (256 + 8)            // fuse_uring_ent_in_out.commit_id
#define ENT_PAYLOAD_SIZE (256 + 16)        // fuse_uring_ent_in_out.payload_sz
#define CMD_COMMIT_ID 8                    // fuse_uring_cmd_req.commit_id, in the SQE's command area
#define CMD_QUEUE_ID 16                    // fuse_uring_cmd_req.qid

static uint64_t file_size = 1ull << 30;
static int fuse_fd, use_uring;
static volatile int init_answered;
static char zeros[MAX_WRITE] __attribute__((aligned(4096)));

static void die(const char *what) { perror(what); _exit(1); }

static void fill_attr(struct fuse_attr *a, uint64_t ino) {
    memset(a, 0, sizeof *a);
    a->ino = ino;
    a->blksize = 4096;
    if (ino == FUSE_ROOT_ID) { a->mode = S_IFDIR | 0755; a->nlink = 2; }
    else { a->mode = S_IFREG | 0644; a->nlink = 1; a->size = file_size; a->blocks = file_size / 512; }
}

// Answers one request: the reply body goes to `out` and its length is returned, or -errno. A READ's body is
// *data_len bytes that the caller does not copy (zeros, or the payload buffer as it is). *no_reply for FORGET & co.
static int serve(uint32_t opcode, uint64_t nodeid, const void *arg, char *out, uint32_t *data_len, int *no_reply) {
    *no_reply = 0;
    *data_len = 0;
    switch (opcode) {
    case FUSE_INIT: {
        const struct fuse_init_in *in = arg;
        struct fuse_init_out *o = (void *)out;
        uint64_t offered = in->flags | ((in->flags & FUSE_INIT_EXT) ? (uint64_t)in->flags2 << 32 : 0);
        uint64_t wanted = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS |
                          FUSE_INIT_EXT | (use_uring ? URING_INIT_FLAG : 0);
        uint64_t flags = offered & wanted;
        if (use_uring && !(flags & URING_INIT_FLAG)) { fprintf(stderr, "nullfuse: the kernel does not offer FUSE over io_uring\n"); _exit(1); }
        memset(o, 0, sizeof *o);
        o->major = FUSE_KERNEL_VERSION;
        o->minor = 38;
        o->max_readahead = in->max_readahead;
        o->flags = (uint32_t)flags;
        o->flags2 = (uint32_t)(flags >> 32);
        o->max_background = 128;           // as cowdisk: the loop's async direct I/O counts as background requests
        o->congestion_threshold = 96;
        o->max_write = MAX_WRITE;
        o->max_pages = MAX_WRITE / 4096;
        o->time_gran = 1;
        return sizeof *o;
    }
    case FUSE_LOOKUP: {                    // every name is the disk: the loop device only ever asks for "disk"
        struct fuse_entry_out *e = (void *)out;
        memset(e, 0, sizeof *e);
        e->nodeid = 2;
        e->entry_valid = e->attr_valid = 1u << 30;
        fill_attr(&e->attr, 2);
        return sizeof *e;
    }
    case FUSE_GETATTR: {
        struct fuse_attr_out *a = (void *)out;
        memset(a, 0, sizeof *a);
        a->attr_valid = 1u << 30;
        fill_attr(&a->attr, nodeid);
        return sizeof *a;
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
        struct fuse_open_out *o = (void *)out;
        memset(o, 0, sizeof *o);
        o->fh = 1;
        if (opcode == FUSE_OPEN) o->open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
        return sizeof *o;
    }
    case FUSE_READ: {
        const struct fuse_read_in *r = arg;
        uint64_t n = r->size;
        if (r->offset >= file_size) n = 0;
        else if (r->offset + n > file_size) n = file_size - r->offset;
        *data_len = (uint32_t)n;
        return 0;
    }
    case FUSE_WRITE: {
        const struct fuse_write_in *w = arg;
        struct fuse_write_out *o = (void *)out;
        memset(o, 0, sizeof *o);
        o->size = w->size;
        return sizeof *o;
    }
    case FUSE_STATFS: {
        struct fuse_statfs_out *s = (void *)out;
        memset(s, 0, sizeof *s);
        s->st.bsize = s->st.frsize = 4096;
        s->st.namelen = 255;
        return sizeof *s;
    }
    case FUSE_FLUSH: case FUSE_FSYNC: case FUSE_RELEASE: case FUSE_RELEASEDIR: case FUSE_FSYNCDIR: case FUSE_ACCESS:
    case FUSE_DESTROY:
        return 0;
    case FUSE_FORGET: case FUSE_BATCH_FORGET: case FUSE_INTERRUPT:
        *no_reply = 1;
        return 0;
    default:
        return -ENOSYS;
    }
}

// A /dev/fuse worker: with io_uring, only INIT and what comes before the queues are registered pass here.
static void *dev_fuse_worker(void *arg) {
    int fd = (int)(intptr_t)arg;
    char *in = aligned_alloc(4096, IN_BUFFER), out[256];
    if (!in) die("aligned_alloc");
    for (;;) {
        ssize_t n = read(fd, in, IN_BUFFER);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
            _exit(errno == ENODEV ? 0 : 1);   // ENODEV: unmounted (_exit: other threads may be ending too)
        }
        const struct fuse_in_header *h = (void *)in;
        uint32_t data_len;
        int no_reply, r = serve(h->opcode, h->nodeid, in + sizeof *h, out, &data_len, &no_reply);
        if (no_reply) continue;
        struct fuse_out_header oh = { .error = r < 0 ? r : 0, .unique = h->unique };
        struct iovec v[2] = { { &oh, sizeof oh }, { data_len ? zeros : out, data_len ? data_len : (r > 0 ? r : 0) } };
        oh.len = sizeof oh + v[1].iov_len;
        if (writev(fd, v, 2) < 0 && errno != ENOENT) die("writev /dev/fuse");
        if (h->opcode == FUSE_INIT) __atomic_store_n(&init_answered, 1, __ATOMIC_RELEASE);
        if (h->opcode == FUSE_DESTROY) _exit(0);
    }
}

struct entry { char *header, *payload; struct iovec iov[2]; };

static void queue_command(struct io_uring *ring, struct entry *e, uint64_t index, uint16_t queue, uint32_t command, uint64_t commit_id) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);   // never NULL: the ring has room for every entry
    if (!sqe) { fprintf(stderr, "nullfuse: the submission ring is full\n"); _exit(1); }
    uint8_t *raw = (uint8_t *)sqe;
    memset(raw, 0, 128);                                   // an SQE128 entry
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd;
    sqe->cmd_op = command;
    sqe->user_data = index;
    if (command == URING_CMD_REGISTER) { sqe->addr = (uint64_t)(uintptr_t)e->iov; sqe->len = 2; }
    uint8_t *cmd = raw + 48;                               // the command area
    memcpy(cmd + CMD_COMMIT_ID, &commit_id, 8);
    memcpy(cmd + CMD_QUEUE_ID, &queue, 2);
}

static int entries_per_queue;

// One queue: pinned to its CPU, registers its entries, then answers and re-arms them until the mount goes.
static void *uring_queue(void *arg) {
    uint16_t queue = (uint16_t)(intptr_t)arg;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(queue, &cpus);
    pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);   // may fail for an offline CPU: it still registers
    // The ring as cowdisk's queues make theirs (FuseUringQueue.CreateRing): SINGLE_ISSUER | COOP_TASKRUN, and
    // without them on a kernel that refuses them.
    struct io_uring ring;
    struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN };
    int rc = io_uring_queue_init_params(2 * entries_per_queue, &ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_SQE128;
        rc = io_uring_queue_init_params(2 * entries_per_queue, &ring, &p);
    }
    if (rc < 0) { errno = -rc; die("io_uring_setup"); }
    struct entry *es = calloc(entries_per_queue, sizeof *es);
    if (!es) die("calloc");
    for (int i = 0; i < entries_per_queue; i++) {
        es[i].header = aligned_alloc(4096, 4096);
        es[i].payload = aligned_alloc(4096, MAX_WRITE);
        if (!es[i].header || !es[i].payload) die("aligned_alloc");
        memset(es[i].header, 0, 4096);
        es[i].iov[0] = (struct iovec){ es[i].header, ENT_HEADER };
        es[i].iov[1] = (struct iovec){ es[i].payload, MAX_WRITE };
        queue_command(&ring, &es[i], i, queue, URING_CMD_REGISTER, 0);
    }
    for (;;) {
        // One io_uring_enter per wake-up: submits the answers of the last batch and waits for the next request.
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) { errno = -rc; die("io_uring_enter"); }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            struct entry *e = &es[cqe->user_data];
            if (cqe->res == -ENOTCONN || cqe->res == -ECONNABORTED || cqe->res == -ECANCELED || cqe->res == -ENODEV)
                _exit(0);                  // the connection ended: unmounted
            if (cqe->res < 0) {
                // A probe fails loudly rather than guess what the kernel did with the entry.
                fprintf(stderr, "nullfuse: queue %u: the kernel refused an entry: %s\n", queue, strerror(-cqe->res));
                _exit(1);
            }
            const struct fuse_in_header *h = (void *)e->header;
            uint64_t unique = h->unique, commit_id;
            memcpy(&commit_id, e->header + ENT_COMMIT_ID, 8);
            uint32_t data_len;
            int no_reply, r = serve(h->opcode, h->nodeid, e->header + ENT_OP_IN, e->payload, &data_len, &no_reply);
            uint32_t body = data_len ? data_len : (r > 0 ? (uint32_t)r : 0);
            struct fuse_out_header *oh = (void *)e->header;
            oh->len = sizeof *oh + body;
            oh->error = r < 0 ? r : 0;
            oh->unique = unique;
            memcpy(e->header + ENT_PAYLOAD_SIZE, &body, 4);
            queue_command(&ring, e, cqe->user_data, queue, URING_CMD_COMMIT_AND_FETCH, commit_id);
        }
        io_uring_cq_advance(&ring, seen);
    }
}

// The kernel wants a queue for every possible CPU (nr_cpu_ids): the last number in /sys/devices/system/cpu/possible, plus one.
static int possible_cpus(void) {
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    char line[256] = "0";
    if (f) { if (!fgets(line, sizeof line, f)) strcpy(line, "0"); fclose(f); }
    const char *last = line + strcspn(line, "\n");
    while (last > line && (last[-1] >= '0' && last[-1] <= '9')) last--;
    return atoi(last) + 1;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[2], "dev-fuse") && strcmp(argv[2], "io-uring")) || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: nullfuse MOUNTPOINT dev-fuse THREADS | nullfuse MOUNTPOINT io-uring ENTRIES\n");
        return 2;
    }
    use_uring = !strcmp(argv[2], "io-uring");
    int count = atoi(argv[3]);
    const char *size = getenv("NULLFUSE_SIZE");
    if (size) file_size = strtoull(size, NULL, 0);
    fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (fuse_fd < 0) die("open /dev/fuse");
    char opts[160];
    snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fuse_fd);
    if (mount("nullfuse", argv[1], "fuse.nullfuse", MS_NOSUID | MS_NODEV, opts)) die("mount");
    pthread_t t;
    if (!use_uring) {
        for (int i = 1; i < count; i++) {
            int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
            uint32_t from = fuse_fd;
            if (fd < 0 || ioctl(fd, FUSE_DEV_IOC_CLONE, &from)) die("FUSE_DEV_IOC_CLONE");
            if (pthread_create(&t, NULL, dev_fuse_worker, (void *)(intptr_t)fd)) die("pthread_create");
        }
        dev_fuse_worker((void *)(intptr_t)fuse_fd);
    }
    entries_per_queue = count;
    if (pthread_create(&t, NULL, dev_fuse_worker, (void *)(intptr_t)fuse_fd)) die("pthread_create");
    while (!__atomic_load_n(&init_answered, __ATOMIC_ACQUIRE)) usleep(1000);   // INIT goes over /dev/fuse; queues register after it
    int cpus = possible_cpus();
    for (int q = 0; q < cpus; q++)
        if (pthread_create(&t, NULL, uring_queue, (void *)(intptr_t)q)) die("pthread_create");
    pause();
}
