/*
 * interop_recv: receive N messages from ADDRESS, accepting each one.
 * Prints "attached" once the peer has attached the link (so a test can start
 * the sender after it), then "received R" at the end; exits 0 iff R == N.
 *
 * usage: interop_recv HOST PORT ADDRESS N
 */
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/session.h>
#include <proton/transport.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define TIMEOUT_MS 30000
#define WINDOW 100 /* credit kept outstanding: bounded, like any real consumer */

typedef struct {
  const char *address;
  int target, received, bad;
  bool failed;
  pn_message_t *msg;
  char *buf;
  size_t cap;
} receiver_t;

static void report_condition(const char *what, pn_condition_t *cond, receiver_t *r) {
  if (pn_condition_is_set(cond)) {
    fprintf(stderr, "interop_recv: %s: %s: %s\n", what, pn_condition_get_name(cond),
            pn_condition_get_description(cond));
    r->failed = true;
  }
}

static int min_int(int a, int b) { return a < b ? a : b; }

static void on_delivery(receiver_t *r, pn_delivery_t *d) {
  pn_link_t *link = pn_delivery_link(d);
  if (!pn_delivery_readable(d) || pn_delivery_partial(d)) return;
  size_t size = pn_delivery_pending(d);
  if (size > r->cap) {
    r->cap = size;
    r->buf = realloc(r->buf, r->cap);
  }
  ssize_t got = pn_link_recv(link, r->buf, size);
  pn_link_advance(link);
  if (got < 0 || pn_message_decode(r->msg, r->buf, (size_t)got) != 0) r->bad++;
  pn_delivery_update(d, PN_ACCEPTED);
  pn_delivery_settle(d);
  r->received++;
  if (r->received == r->target) {
    pn_connection_close(pn_session_connection(pn_link_session(link)));
    return;
  }
  /* Top the credit up in batches rather than one flow frame per message. */
  int goal = min_int(WINDOW, r->target - r->received);
  int credit = pn_link_credit(link);
  if (credit <= goal / 2) pn_link_flow(link, goal - credit);
}

static bool handle(receiver_t *r, pn_event_t *e) {
  switch (pn_event_type(e)) {
  case PN_CONNECTION_INIT: {
    pn_connection_t *c = pn_event_connection(e);
    pn_connection_set_container(c, "shoal-interop-recv");
    pn_connection_open(c);
    pn_session_t *ssn = pn_session(c);
    pn_session_open(ssn);
    pn_link_t *link = pn_receiver(ssn, "interop-receiver");
    pn_terminus_set_address(pn_link_source(link), r->address);
    pn_link_open(link);
    pn_link_flow(link, min_int(WINDOW, r->target));
    break;
  }
  case PN_LINK_REMOTE_OPEN:
    printf("attached\n");
    fflush(stdout);
    break;
  case PN_DELIVERY:
    on_delivery(r, pn_event_delivery(e));
    break;
  case PN_LINK_REMOTE_CLOSE:
    report_condition("link closed", pn_link_remote_condition(pn_event_link(e)), r);
    pn_connection_close(pn_event_connection(e));
    break;
  case PN_CONNECTION_REMOTE_CLOSE:
    report_condition("connection closed", pn_connection_remote_condition(pn_event_connection(e)), r);
    pn_connection_close(pn_event_connection(e));
    break;
  case PN_TRANSPORT_CLOSED:
    report_condition("transport closed", pn_transport_condition(pn_event_transport(e)), r);
    return false; /* our only connection is gone: done (the timeout would keep the proactor active) */
  case PN_PROACTOR_TIMEOUT:
    fprintf(stderr, "interop_recv: timed out after %d ms\n", TIMEOUT_MS);
    r->failed = true;
    return false;
  case PN_PROACTOR_INACTIVE:
    return false;
  default:
    break;
  }
  return true;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s HOST PORT ADDRESS N\n", argv[0]);
    return 2;
  }
  receiver_t r = {0};
  r.address = argv[3];
  r.target = atoi(argv[4]);
  r.msg = pn_message();

  pn_proactor_t *proactor = pn_proactor();
  char addr[PN_MAX_ADDR];
  pn_proactor_addr(addr, sizeof(addr), argv[1], argv[2]);
  pn_proactor_connect2(proactor, NULL, NULL, addr);
  pn_proactor_set_timeout(proactor, TIMEOUT_MS);

  bool running = true;
  while (running) {
    pn_event_batch_t *batch = pn_proactor_wait(proactor);
    pn_event_t *e;
    while ((e = pn_event_batch_next(batch))) {
      if (!handle(&r, e)) running = false;
    }
    pn_proactor_done(proactor, batch);
  }
  printf("received %d bad %d\n", r.received, r.bad);
  fflush(stdout);
  pn_proactor_free(proactor);
  pn_message_free(r.msg);
  free(r.buf);
  return (!r.failed && r.bad == 0 && r.received == r.target) ? 0 : 1;
}
