/*
 * durable_send: send N unsettled, durable messages to ADDRESS and count the
 * outcomes: the store-and-forward variant of interop_send. Message i has the
 * message-id and the string body "PREFIX-i", so a receiver can check order and
 * duplicates; durable, so a broker must have stored it before it accepts it.
 *
 * usage: durable_send HOST PORT ADDRESS N PREFIX
 * prints "sent S accepted A other O" and exits 0 only if all N were accepted.
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
#include <string.h>

#define TIMEOUT_MS 30000

typedef struct {
  const char *address;
  const char *prefix;
  int target;
  int sent, accepted, other;
  bool failed;
  pn_message_t *msg;
  pn_rwbytes_t buf; /* encode buffer, reused across messages */
} sender_t;

static void report_condition(const char *what, pn_condition_t *cond, sender_t *s) {
  if (pn_condition_is_set(cond)) {
    fprintf(stderr, "durable_send: %s: %s: %s\n", what, pn_condition_get_name(cond),
            pn_condition_get_description(cond));
    s->failed = true;
  }
}

static void send_available(sender_t *s, pn_link_t *link) {
  while (pn_link_credit(link) > 0 && s->sent < s->target) {
    char tag[32];
    int len = snprintf(tag, sizeof(tag), "t%d", s->sent);
    pn_delivery(link, pn_dtag(tag, (size_t)len));
    char text[128];
    snprintf(text, sizeof(text), "%s-%d", s->prefix, s->sent);
    pn_data_t *body = pn_message_body(s->msg);
    pn_data_clear(body);
    pn_data_put_string(body, pn_bytes(strlen(text), text));
    pn_data_t *id = pn_message_id(s->msg);
    pn_data_clear(id);
    pn_data_put_string(id, pn_bytes(strlen(text), text));
    if (pn_message_send(s->msg, link, &s->buf) < 0) {
      fprintf(stderr, "durable_send: encode failed\n");
      s->failed = true;
      return;
    }
    s->sent++;
  }
}

/* Returns false when the proactor has nothing left to do. */
static bool handle(sender_t *s, pn_event_t *e) {
  switch (pn_event_type(e)) {
  case PN_CONNECTION_INIT: {
    pn_connection_t *c = pn_event_connection(e);
    pn_connection_set_container(c, "shoal-durable-send");
    pn_connection_open(c);
    pn_session_t *ssn = pn_session(c);
    pn_session_open(ssn);
    pn_link_t *link = pn_sender(ssn, "durable-sender");
    pn_terminus_set_address(pn_link_target(link), s->address);
    pn_link_set_snd_settle_mode(link, PN_SND_UNSETTLED);
    pn_link_open(link);
    break;
  }
  case PN_LINK_FLOW:
    send_available(s, pn_event_link(e));
    break;
  case PN_DELIVERY: {
    pn_delivery_t *d = pn_event_delivery(e);
    uint64_t state = pn_delivery_remote_state(d);
    if (state == 0 && !pn_delivery_settled(d)) break; /* no outcome yet */
    if (state == PN_ACCEPTED)
      s->accepted++;
    else
      s->other++;
    pn_delivery_settle(d);
    if (s->accepted + s->other == s->target) pn_connection_close(pn_event_connection(e));
    break;
  }
  case PN_LINK_REMOTE_CLOSE:
    report_condition("link closed", pn_link_remote_condition(pn_event_link(e)), s);
    pn_connection_close(pn_event_connection(e));
    break;
  case PN_CONNECTION_REMOTE_CLOSE:
    report_condition("connection closed", pn_connection_remote_condition(pn_event_connection(e)), s);
    pn_connection_close(pn_event_connection(e));
    break;
  case PN_TRANSPORT_CLOSED:
    report_condition("transport closed", pn_transport_condition(pn_event_transport(e)), s);
    return false; /* our only connection is gone: done (the timeout would keep the proactor active) */
  case PN_PROACTOR_TIMEOUT:
    fprintf(stderr, "durable_send: timed out after %d ms\n", TIMEOUT_MS);
    s->failed = true;
    return false;
  case PN_PROACTOR_INACTIVE:
    return false;
  default:
    break;
  }
  return true;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s HOST PORT ADDRESS N PREFIX\n", argv[0]);
    return 2;
  }
  sender_t s = {0};
  s.address = argv[3];
  s.target = atoi(argv[4]);
  s.prefix = argv[5];
  s.msg = pn_message();
  /* The header's durable flag: the broker stores the message before accepting it. */
  pn_message_set_durable(s.msg, true);

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
      if (!handle(&s, e)) running = false;
    }
    pn_proactor_done(proactor, batch);
  }
  printf("sent %d accepted %d other %d\n", s.sent, s.accepted, s.other);
  fflush(stdout);
  pn_proactor_free(proactor);
  pn_message_free(s.msg);
  free(s.buf.start);
  return (!s.failed && s.accepted == s.target) ? 0 : 1;
}
