#include "tests/target/route_guide_service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <utility>

#include "common/tsan_annotations.h"

namespace barrage::target {
namespace {

using ::main::Feature;
using ::main::Point;
using ::main::Rectangle;
using ::main::RouteNote;
using ::main::RouteSummary;

Feature MakeFeature(const char* name, int32_t latitude, int32_t longitude) {
  Feature f;
  f.set_name(name);
  f.mutable_location()->set_latitude(latitude);
  f.mutable_location()->set_longitude(longitude);
  return f;
}

bool SamePoint(const Point& a, const Point& b) {
  return a.latitude() == b.latitude() && a.longitude() == b.longitude();
}

// ListFeatures: the known features inside the rectangle, one write at a time.
class ListFeaturesReactor : public grpc::ServerWriteReactor<Feature> {
 public:
  explicit ListFeaturesReactor(const Rectangle& rectangle) {
    for (const Feature& f : KnownFeatures()) {
      if (InRectangle(f.location(), rectangle)) matches_.push_back(&f);
    }
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    WriteNext();
  }
  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  void WriteNext() {
    HappensBefore(this);
    if (next_ == matches_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(matches_[next_++]);
  }

  std::vector<const Feature*> matches_;
  size_t next_ = 0;
};

// RecordRoute: counts the points, the known features among them and the
// distance along them; the summary when the client half-closes.
class RecordRouteReactor : public grpc::ServerReadReactor<Point> {
 public:
  explicit RecordRouteReactor(RouteSummary* summary)
      : summary_(summary), start_(std::chrono::steady_clock::now()) {
    HappensBefore(this);
    StartRead(&point_);
  }
  void OnReadDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      const auto elapsed = std::chrono::steady_clock::now() - start_;
      summary_->set_elapsed_time(
          static_cast<int32_t>(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count()));
      HappensBefore(this);
      Finish(grpc::Status::OK);
      return;
    }
    summary_->set_point_count(summary_->point_count() + 1);
    for (const Feature& f : KnownFeatures()) {
      if (SamePoint(f.location(), point_)) summary_->set_feature_count(summary_->feature_count() + 1);
    }
    if (last_.has_value()) summary_->set_distance(summary_->distance() + DistanceMetres(*last_, point_));
    last_ = point_;
    HappensBefore(this);
    StartRead(&point_);
  }
  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  RouteSummary* const summary_;
  const std::chrono::steady_clock::time_point start_;
  Point point_;
  std::optional<Point> last_;
};

// RouteChat: each note read is answered with the notes recorded at its
// point (itself last), all written before the next note is read.
class RouteChatReactor : public grpc::ServerBidiReactor<RouteNote, RouteNote> {
 public:
  explicit RouteChatReactor(RouteGuideService& service) : service_(service) {
    HappensBefore(this);
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    HappensAfter(this);  // the operation's start (common/tsan_annotations.h)
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status::OK);
      return;
    }
    out_ = service_.Record(in_);
    next_ = 0;
    WriteOrRead();
  }
  void OnWriteDone(bool ok) override {
    HappensAfter(this);
    if (!ok) {
      HappensBefore(this);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    WriteOrRead();
  }
  void OnDone() override {
    HappensAfter(this);
    delete this;
  }

 private:
  void WriteOrRead() {
    HappensBefore(this);
    if (next_ < out_.size()) {
      StartWrite(&out_[next_++]);
      return;
    }
    StartRead(&in_);
  }

  RouteGuideService& service_;
  RouteNote in_;
  std::vector<RouteNote> out_;
  size_t next_ = 0;
};

}  // namespace

const std::vector<Feature>& KnownFeatures() {
  // Ten places from gRPC's example database (route_guide_db.json), the ones
  // k6's client streaming example visits, and the one its unary examples ask for.
  static const std::vector<Feature> features = {
      MakeFeature("Patriots Path, Mendham, NJ 07945, USA", 407838351, -746143763),
      MakeFeature("101 New Jersey 10, Whippany, NJ 07981, USA", 408122808, -743999179),
      MakeFeature("U.S. 6, Shohola, PA 18458, USA", 413628156, -749015468),
      MakeFeature("5 Conners Road, Kingston, NY 12401, USA", 419999544, -740371136),
      MakeFeature("Mid Hudson Psychiatric Center, New Hampton, NY 10958, USA", 414008389, -743951297),
      MakeFeature("287 Flugertown Road, Livingston Manor, NY 12758, USA", 419611318, -746524769),
      MakeFeature("4001 Tremley Point Road, Linden, NJ 07036, USA", 406109563, -742186778),
      MakeFeature("352 South Mountain Road, Wallkill, NY 12589, USA", 416802456, -742370183),
      MakeFeature("Bailey Turn Road, Harriman, NY 10926, USA", 412950425, -741077389),
      MakeFeature("193-199 Wawayanda Road, Hewitt, NJ 07421, USA", 412144655, -743949739),
      MakeFeature("3 Hasta Way, Newton, NJ 07860, USA", 410248224, -747127767),
  };
  return features;
}

int32_t DistanceMetres(const Point& a, const Point& b) {
  constexpr double kE7 = 1e7;
  constexpr double kEarthRadius = 6371000;
  constexpr double kRadiansPerDegree = M_PI / 180;
  const double lat1 = a.latitude() / kE7 * kRadiansPerDegree;
  const double lat2 = b.latitude() / kE7 * kRadiansPerDegree;
  const double dlat = lat2 - lat1;
  const double dlng = (b.longitude() - static_cast<double>(a.longitude())) / kE7 * kRadiansPerDegree;
  const double h = std::sin(dlat / 2) * std::sin(dlat / 2) +
                   std::cos(lat1) * std::cos(lat2) * std::sin(dlng / 2) * std::sin(dlng / 2);
  return static_cast<int32_t>(kEarthRadius * 2 * std::atan2(std::sqrt(h), std::sqrt(1 - h)));
}

bool InRectangle(const Point& p, const Rectangle& r) {
  // minmax of an initializer list: values (the two-argument form returns
  // references, here to temporaries).
  const auto [left, right] = std::minmax({r.lo().longitude(), r.hi().longitude()});
  const auto [bottom, top] = std::minmax({r.lo().latitude(), r.hi().latitude()});
  return p.longitude() >= left && p.longitude() <= right && p.latitude() >= bottom && p.latitude() <= top;
}

grpc::ServerUnaryReactor* FeatureExplorerService::GetFeature(grpc::CallbackServerContext* context,
                                                             const Point* point, Feature* feature) {
  *feature->mutable_location() = *point;  // no feature there: an unnamed one
  for (const Feature& f : KnownFeatures()) {
    if (SamePoint(f.location(), *point)) *feature = f;
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<Feature>* FeatureExplorerService::ListFeatures(grpc::CallbackServerContext*,
                                                                        const Rectangle* rectangle) {
  return new ListFeaturesReactor(*rectangle);
}

grpc::ServerReadReactor<Point>* RouteGuideService::RecordRoute(grpc::CallbackServerContext*,
                                                              RouteSummary* summary) {
  return new RecordRouteReactor(summary);
}

grpc::ServerBidiReactor<RouteNote, RouteNote>* RouteGuideService::RouteChat(grpc::CallbackServerContext*) {
  return new RouteChatReactor(*this);
}

std::vector<RouteNote> RouteGuideService::Record(const RouteNote& note) {
  const std::pair<int32_t, int32_t> key{note.location().latitude(), note.location().longitude()};
  std::lock_guard<std::mutex> lock(mu_);
  auto [at, added] = notes_.try_emplace(key);
  if (added) {
    points_in_order_.push_back(key);
    if (points_in_order_.size() > kPoints) {
      notes_.erase(points_in_order_.front());
      points_in_order_.pop_front();
    }
  }
  std::deque<RouteNote>& notes = at->second;
  notes.push_back(note);
  if (notes.size() > kNotesPerPoint) notes.pop_front();
  return std::vector<RouteNote>(notes.begin(), notes.end());
}

}  // namespace barrage::target
