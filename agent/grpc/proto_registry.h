// The descriptors one k6 gRPC Client knows: what client.load() and
// client.loadProtoset() compiled, the methods they made invocable, and the
// type registry that resolves google.protobuf.Any (spec §1.3, §1.4).
//
// Ownership and threads: a JS Client owns one through a shared_ptr. Load and
// LoadProtoset mutate it and run in the init context only, on one thread.
// Once loading is done the registry is immutable and every const method
// (FindMethod, the JSON codec in json_codec.h, message_factory) may be called
// from any number of threads at once, which is how VUs share it.
//
// The registry never touches the disk: every .proto file comes through the
// caller's FileReader (the disk during the first init pass, the archive on
// agents), and the well-known types (google/protobuf/*.proto) come from the
// descriptors compiled into libprotobuf, so they resolve everywhere.
#ifndef BARRAGE_AGENT_GRPC_PROTO_REGISTRY_H_
#define BARRAGE_AGENT_GRPC_PROTO_REGISTRY_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/grpc/message_plan.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"

namespace barrage::agent::grpc_client {

// One invocable method, as k6's load() reports it.
struct MethodInfo {
  std::string package;      // "hello"
  std::string service;      // "HelloService" (k6 reports the short name)
  std::string method;       // "SayHello"
  std::string full_method;  // "/hello.HelloService/SayHello", the gRPC path
  bool client_streaming = false;
  bool server_streaming = false;
  // Point into the registry that returned it; valid while that registry lives.
  const google::protobuf::MethodDescriptor* descriptor = nullptr;
  // The codec plans of the request and response types (set on the
  // registry's own copies, the ones FindMethod returns).
  const MessagePlan* input_plan = nullptr;
  const MessagePlan* output_plan = nullptr;
};

class ProtoRegistry {
 public:
  // Reads one file by the path the registry asks for (an import path joined
  // with a proto name, cleaned). A NotFound status means "try the next
  // import path"; its message is the reason k6 gives when none has the file
  // ("stat /dir/x.proto: no such file or directory"). Any other error stops
  // the search.
  using FileReader = std::function<absl::StatusOr<std::string>(const std::string& path)>;

  ProtoRegistry();
  ~ProtoRegistry();
  // A deep copy: the copy gets its own pool rebuilt from the same files, so
  // loading more into it leaves the original (which other VUs may be
  // reading) untouched.
  ProtoRegistry(const ProtoRegistry& other);
  ProtoRegistry& operator=(const ProtoRegistry&) = delete;

  // client.load(importPaths, ...files), as k6 loads: each file, and each of
  // its imports, is looked up under each import path in order, first hit
  // wins; every name, absolute or not, is joined onto the import path
  // (common/paths.h JoinPath). import_paths must be absolute (the caller
  // resolves them against the script's directory, and passes that directory
  // when the script gave none). Returns the methods of the named files and
  // of everything they import. A missing file is kNotFound with k6's text
  // (`stat /dir/x.proto: no such file or directory`, or `could not resolve
  // path "./x.proto": stat ...`); other errors (kInvalidArgument) name the
  // file and line:column, e.g. `hello.proto:5:3: "Foo" is not defined.`.
  // On error nothing is added.
  [[nodiscard]] absl::StatusOr<std::vector<MethodInfo>> Load(const std::vector<std::string>& import_paths,
                                                             const std::vector<std::string>& files,
                                                             const FileReader& reader);

  // client.loadProtoset(path): `bytes` is a serialized FileDescriptorSet;
  // `path` only names it in errors. Dependencies must be in the set, already
  // loaded, or well-known types.
  [[nodiscard]] absl::StatusOr<std::vector<MethodInfo>> LoadProtoset(const std::string& bytes,
                                                                     const std::string& path);

  // The method for a gRPC path; a missing leading "/" is added, as k6 does.
  // Case-sensitive. nullptr when unknown.
  const MethodInfo* FindMethod(std::string_view url) const;

  // Every method loaded so far, in load order. Pointers into it (FindMethod's
  // results) stay valid while the registry lives, across later loads.
  const std::deque<MethodInfo>& methods() const { return methods_; }

  // Every path the reader successfully read, in order, each once: what the
  // archive must carry so agents can replay the loads.
  const std::vector<std::string>& files_read() const { return files_read_; }

  // Message type by full name ("pkg.Msg"), or nullptr. Also resolves Any.
  const google::protobuf::Descriptor* FindMessageType(std::string_view full_name) const;

  const google::protobuf::DescriptorPool& pool() const { return *pool_; }

  // The prototype of a message type of this pool (thread-safe: the factory
  // locks internally, and prototypes are cached).
  const google::protobuf::Message* Prototype(const google::protobuf::Descriptor* type) const;

  // The direct codec's plan of a message type of this pool (thread-safe;
  // built on first use, kept as long as the registry). Methods' types have
  // theirs in MethodInfo, with no lookup.
  const MessagePlan& Plan(const google::protobuf::Descriptor* type) const { return plans_->Get(type); }

 private:
  // Builds `file` (already resolved, with its dependencies built) into the
  // pool and remembers it for copies.
  const google::protobuf::FileDescriptor* Build(const google::protobuf::FileDescriptorProto& file,
                                                google::protobuf::DescriptorPool::ErrorCollector* errors);
  // Appends the methods of `files` and their imports, skipping known ones.
  std::vector<MethodInfo> AddMethods(const std::vector<const google::protobuf::FileDescriptor*>& files);
  void IndexMethod(const google::protobuf::MethodDescriptor* m);
  // Fills prototypes_ and the methods' plans for every method's request and
  // response type.
  void CachePrototypes();
  // Undoes a failed load: a pool keeps what it built before a later file
  // failed, so the pool is rebuilt from the first `keep` files.
  void Rollback(size_t keep);

  std::unique_ptr<google::protobuf::DescriptorPool> pool_;
  // Makes dynamic messages of pool_'s types; declared after pool_ so it is
  // destroyed first (its prototypes point into the pool).
  std::unique_ptr<google::protobuf::DynamicMessageFactory> factory_;
  std::vector<google::protobuf::FileDescriptorProto> built_;  // build order, for copies
  std::deque<MethodInfo> methods_;
  std::unordered_map<std::string, size_t> method_index_;  // full_method -> methods_
  // The factory takes a lock on every lookup; the types every call uses are
  // looked up here instead, without one (read-only once loading is done).
  std::unordered_map<const google::protobuf::Descriptor*, const google::protobuf::Message*> prototypes_;
  std::vector<std::string> files_read_;
  // Declared after pool_: plans point into it. A pointer, as the cache holds
  // a mutex, and a registry's copy builds its own.
  std::unique_ptr<MessagePlanCache> plans_ = std::make_unique<MessagePlanCache>();
};

}  // namespace barrage::agent::grpc_client

// The JSON codec works on a registry; callers that use one use the other.
#include "agent/grpc/json_codec.h"  // IWYU pragma: export

#endif  // BARRAGE_AGENT_GRPC_PROTO_REGISTRY_H_
