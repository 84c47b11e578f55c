// silent_streams: opens N control-plane sessions to a controller over one
// connection and says nothing on any of them, as the pre-authentication
// exhaustion attack of issue 13 (item 5) did; prints how each one ended,
// "<count> x <status code> <message>". preauth_streams.sh drives it.
#include <grpcpp/create_channel.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "barrage/v1/control.grpc.pb.h"

int main(int argc, char** argv) {
  CLI::App app{"silent_streams: sessions that never say hello", "silent_streams"};
  std::string controller;
  int streams = 15000;
  int deadline_s = 60;
  app.add_option("--controller", controller, "HOST:PORT")->required();
  app.add_option("--streams", streams, "sessions to open (default 15000)");
  app.add_option("--deadline", deadline_s, "seconds each session may last (default 60)");
  CLI11_PARSE(app, argc, argv);
  auto channel = grpc::CreateChannel(controller, grpc::InsecureChannelCredentials());
  auto stub = barrage::v1::Control::NewStub(channel);
  // The asynchronous API: one thread holds them all, as an attacker would.
  grpc::CompletionQueue cq;
  struct Session {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReaderWriter<barrage::v1::AgentMessage, barrage::v1::ControllerMessage>> stream;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < streams; ++i) {
    auto s = std::make_unique<Session>();
    s->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(deadline_s));
    s->stream = stub->AsyncSession(&s->context, &cq, reinterpret_cast<void*>(static_cast<intptr_t>(2 * i)));
    s->stream->Finish(&s->status, reinterpret_cast<void*>(static_cast<intptr_t>(2 * i + 1)));
    sessions.push_back(std::move(s));
  }
  std::cerr << "opened " << streams << " sessions\n";
  std::map<std::string, int> ends;
  void* tag;
  bool ok;
  for (int finished = 0; finished < streams && cq.Next(&tag, &ok);) {
    const intptr_t t = reinterpret_cast<intptr_t>(tag);
    if (t % 2 == 0) continue;  // the stream started
    const grpc::Status& st = sessions[t / 2]->status;
    ends[absl::StrCat(st.error_code(), " ", st.error_message())]++;
    finished++;
  }
  for (const auto& [end, count] : ends) std::cout << count << " x " << end << "\n";
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return 0;
}
