// gRPC's route guide example (proto/routeguide/route_guide.proto: package
// main, FeatureExplorer and RouteGuide) as barrage-target serves it, so that
// k6's gRPC example scripts run unchanged against barrage-target. Answers as
// k6's example server does (internal/lib/testutils/grpcservice there), minus
// its random sleeps: barrage-target is a load target and answers at once.
// All four methods use the callback API.
#ifndef BARRAGE_TESTS_TARGET_ROUTE_GUIDE_SERVICE_H_
#define BARRAGE_TESTS_TARGET_ROUTE_GUIDE_SERVICE_H_

#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "routeguide/route_guide.grpc.pb.h"

namespace barrage::target {

// The features both services know: gRPC's example database, in part.
const std::vector<main::Feature>& KnownFeatures();

// Great-circle distance in metres between two E7 points (haversine, the
// Earth a sphere of 6,371 km), as gRPC's example computes it.
int32_t DistanceMetres(const main::Point& a, const main::Point& b);

// True when `p` lies inside the rectangle (its corners in either order).
bool InRectangle(const main::Point& p, const main::Rectangle& r);

class FeatureExplorerService final : public main::FeatureExplorer::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetFeature(grpc::CallbackServerContext* context, const main::Point* point,
                                       main::Feature* feature) override;
  grpc::ServerWriteReactor<main::Feature>* ListFeatures(grpc::CallbackServerContext* context,
                                                        const main::Rectangle* rectangle) override;
};

class RouteGuideService final : public main::RouteGuide::CallbackService {
 public:
  grpc::ServerReadReactor<main::Point>* RecordRoute(grpc::CallbackServerContext* context,
                                                    main::RouteSummary* summary) override;
  grpc::ServerBidiReactor<main::RouteNote, main::RouteNote>* RouteChat(
      grpc::CallbackServerContext* context) override;

  // Records `note` and returns every note recorded at its point, itself
  // last. Bounded, as a load target must be: the newest kNotesPerPoint
  // notes per point, kPoints points (the oldest point is forgotten first).
  std::vector<main::RouteNote> Record(const main::RouteNote& note);

  static constexpr size_t kNotesPerPoint = 64;
  static constexpr size_t kPoints = 4096;

 private:
  std::mutex mu_;
  std::map<std::pair<int32_t, int32_t>, std::deque<main::RouteNote>> notes_;  // guarded by mu_
  std::deque<std::pair<int32_t, int32_t>> points_in_order_;                  // guarded by mu_
};

}  // namespace barrage::target

#endif  // BARRAGE_TESTS_TARGET_ROUTE_GUIDE_SERVICE_H_
