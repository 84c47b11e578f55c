// Control-plane messages that tests send as a fake agent would
// (tests/controller/coordinator_test.cc, tests/integration/control_plane_test.cc).
#ifndef BARRAGE_TESTS_TESTING_CONTROL_MESSAGES_H_
#define BARRAGE_TESTS_TESTING_CONTROL_MESSAGES_H_

#include <chrono>
#include <cstdint>

#include "barrage/v1/control.pb.h"

namespace barrage::testutil {

// A well-formed delta: `count` iterations at 1 each, now.
inline v1::AgentMessage IterationsDelta(uint64_t count) {
  v1::AgentMessage m;
  v1::MetricsDelta* d = m.mutable_metrics();
  v1::MetricDefinition* def = d->add_definitions();
  def->set_name("iterations");
  def->set_type(v1::METRIC_TYPE_COUNTER);
  def->set_contains(v1::VALUE_TYPE_DEFAULT);
  v1::MetricSeries* s = d->add_series();
  s->set_metric("iterations");
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  s->set_count(count);
  s->set_sum(static_cast<double>(count));
  s->set_min(1);
  s->set_max(1);
  s->set_last(1);
  s->set_first_seen_ns(now);
  s->set_last_time_ns(now);
  return m;
}

}  // namespace barrage::testutil

#endif  // BARRAGE_TESTS_TESTING_CONTROL_MESSAGES_H_
