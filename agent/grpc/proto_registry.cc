#include "agent/grpc/proto_registry.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/paths.h"
#include "google/protobuf/compiler/importer.h"
#include "google/protobuf/descriptor_database.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace barrage::agent::grpc_client {
namespace {

namespace pb = ::google::protobuf;

bool IsWellKnown(const std::string& name) {
  return absl::StartsWith(name, "google/protobuf/") &&
         pb::DescriptorPool::generated_pool()->FindFileByName(name) != nullptr;
}

// Serves proto files through the caller's reader, searching the import paths
// in order as k6's resolver (protocompile's SourceResolver) does: each name,
// absolute or not, is joined onto each import path (JoinPath), so
// load(['/some/dir'], '/some/dir/x.proto') looks for
// /some/dir/some/dir/x.proto and fails, as in k6. Well-known types are left
// to the fallback database (the descriptors compiled into libprotobuf), so a
// script needs no copy of them and controller and agents agree on their
// content.
class ReaderSourceTree : public pb::compiler::SourceTree {
 public:
  ReaderSourceTree(const std::vector<std::string>& import_paths, const ProtoRegistry::FileReader& reader,
                   std::vector<std::string>& files_read)
      : import_paths_(import_paths), reader_(reader), files_read_(files_read) {}

  pb::io::ZeroCopyInputStream* Open(const std::string& filename) override {
    last_error_.clear();
    if (IsWellKnown(filename)) {
      last_error_ = "well-known type";
      return nullptr;
    }
    if (filename.find('\0') != std::string::npos) {
      last_error_ = absl::StrCat("file name \"", absl::CHexEscape(filename), "\" holds a NUL character");
      return nullptr;
    }
    std::string not_found;
    for (const std::string& dir : import_paths_) {
      const std::string path = JoinPath(dir, filename);
      absl::StatusOr<std::string> content = reader_(path);
      if (content.ok()) {
        if (std::find(files_read_.begin(), files_read_.end(), path) == files_read_.end()) {
          files_read_.push_back(path);
        }
        contents_.push_back(std::make_unique<std::string>(*std::move(content)));
        return new pb::io::ArrayInputStream(contents_.back()->data(), static_cast<int>(contents_.back()->size()));
      }
      if (!absl::IsNotFound(content.status())) {
        last_error_ = std::string(content.status().message());
        return nullptr;
      }
      not_found = std::string(content.status().message());
    }
    last_error_ = NotFoundText(filename, not_found);
    missing_[filename] = not_found;
    return nullptr;
  }

  // k6's text (protocompile's errFailedToResolve around the file system's
  // error): why the last path tried failed, after the name as the script
  // wrote it unless that message already holds it.
  static std::string NotFoundText(const std::string& name, const std::string& why) {
    return absl::StrContains(why, name) ? why : absl::StrCat("could not resolve path \"", name, "\": ", why);
  }

  std::string GetLastErrorMessage() override { return last_error_; }

  bool AnyMissing() const { return !missing_.empty(); }
  // Why `filename` was not found (the reader's message), if that is what failed.
  const std::string* Missing(const std::string& filename) const {
    auto it = missing_.find(filename);
    return it == missing_.end() ? nullptr : &it->second;
  }

 private:
  const std::vector<std::string>& import_paths_;
  const ProtoRegistry::FileReader& reader_;
  std::vector<std::string>& files_read_;
  // ArrayInputStream does not own its bytes; the parse ends before Load does.
  std::vector<std::unique_ptr<std::string>> contents_;
  std::string last_error_;
  std::map<std::string, std::string> missing_;
};

// Collects parse and validation errors as "file:line:col: message", lines
// and columns counted from 1 as editors do (the parser counts from 0).
class ErrorCollector : public pb::compiler::MultiFileErrorCollector {
 public:
  void AddError(const std::string& raw_filename, int line, int column, const std::string& message) override {
    // A name may hold a NUL (an import string's "\0"), which would end the
    // error's text early on its way into JS.
    const std::string filename =
        raw_filename.find('\0') == std::string::npos ? raw_filename : absl::CHexEscape(raw_filename);
    if (line >= 0) {
      errors_.push_back(absl::StrCat(filename, ":", line + 1, ":", column + 1, ": ", message));
    } else {
      errors_.push_back(absl::StrCat(filename, ": ", message));
    }
  }
  bool empty() const { return errors_.empty(); }
  std::string Text() const { return absl::StrJoin(errors_, "\n"); }

 private:
  std::vector<std::string> errors_;
};

// For protosets: there are no source positions, only element names.
class NamedErrorCollector : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    errors_.push_back(absl::StrCat(filename, ": ", element_name, ": ", message));
  }
  std::string Text() const { return absl::StrJoin(errors_, "\n"); }

 private:
  std::vector<std::string> errors_;
};

void CollectClosure(const pb::FileDescriptor* file, std::set<const pb::FileDescriptor*>& seen,
                    std::vector<const pb::FileDescriptor*>& order) {
  if (!seen.insert(file).second) return;
  order.push_back(file);
  for (int i = 0; i < file->dependency_count(); ++i) CollectClosure(file->dependency(i), seen, order);
}

}  // namespace

ProtoRegistry::ProtoRegistry()
    : pool_(std::make_unique<pb::DescriptorPool>()),
      factory_(std::make_unique<pb::DynamicMessageFactory>(pool_.get())) {}

ProtoRegistry::~ProtoRegistry() = default;

ProtoRegistry::ProtoRegistry(const ProtoRegistry& other) : ProtoRegistry() {
  // The files were valid in build order once, so they are again.
  for (const pb::FileDescriptorProto& file : other.built_) Build(file, nullptr);
  for (const MethodInfo& m : other.methods_) {
    MethodInfo copy = m;
    copy.descriptor = pool_->FindMethodByName(m.descriptor->full_name());
    method_index_.emplace(copy.full_method, methods_.size());
    methods_.push_back(std::move(copy));
  }
  files_read_ = other.files_read_;
  CachePrototypes();
}

const pb::FileDescriptor* ProtoRegistry::Build(const pb::FileDescriptorProto& file,
                                               pb::DescriptorPool::ErrorCollector* errors) {
  const pb::FileDescriptor* built =
      errors ? pool_->BuildFileCollectingErrors(file, errors) : pool_->BuildFile(file);
  if (built != nullptr) built_.push_back(file);
  return built;
}

absl::StatusOr<std::vector<MethodInfo>> ProtoRegistry::Load(const std::vector<std::string>& import_paths,
                                                            const std::vector<std::string>& files,
                                                            const FileReader& reader) {
  std::vector<std::string> files_read = files_read_;
  ReaderSourceTree tree(import_paths, reader, files_read);
  pb::DescriptorPoolDatabase well_known(*pb::DescriptorPool::generated_pool());
  pb::compiler::SourceTreeDescriptorDatabase database(&tree, &well_known);
  ErrorCollector errors;
  database.RecordErrorsTo(&errors);
  // Asked for before any parse, so the parser records source positions and
  // validation errors get their line:column.
  pb::DescriptorPool::ErrorCollector* validation_errors = database.GetValidationErrorCollector();

  const size_t built_before = built_.size();
  // Files are built depth first, each after its imports.

  std::set<std::string> in_progress;
  std::function<const pb::FileDescriptor*(const std::string&, const std::string&)> build_file =
      [&](const std::string& name, const std::string& importer) -> const pb::FileDescriptor* {
    if (const pb::FileDescriptor* done = pool_->FindFileByName(name)) return done;
    if (!in_progress.insert(name).second) {
      errors.AddError(importer, -1, 0, absl::StrCat("import cycle through \"", name, "\""));
      return nullptr;
    }
    pb::FileDescriptorProto proto;
    if (!database.FindFileByName(name, &proto)) {
      // The database already reported why (parse errors, or the tree's
      // message for a missing file).
      if (!importer.empty()) errors.AddError(importer, -1, 0, absl::StrCat("cannot import \"", name, "\""));
      return nullptr;
    }
    for (const std::string& dep : proto.dependency()) {
      if (build_file(dep, name) == nullptr) return nullptr;
    }
    in_progress.erase(name);
    return Build(proto, validation_errors);
  };

  std::vector<const pb::FileDescriptor*> roots;
  for (const std::string& file : files) {
    std::string name(absl::StripPrefix(file, "./"));
    const pb::FileDescriptor* built = build_file(name, "");
    if (built == nullptr) {
      Rollback(built_before);
      // A missing root file reads as in k6, without our file prefix.
      if (const std::string* why = tree.Missing(name)) {
        return absl::NotFoundError(ReaderSourceTree::NotFoundText(file, *why));
      }
      std::string text = errors.empty() ? absl::StrCat(name, ": could not load") : errors.Text();
      return tree.AnyMissing() ? absl::NotFoundError(text) : absl::InvalidArgumentError(text);
    }
    roots.push_back(built);
  }
  files_read_ = std::move(files_read);
  return AddMethods(roots);
}

absl::StatusOr<std::vector<MethodInfo>> ProtoRegistry::LoadProtoset(const std::string& bytes,
                                                                    const std::string& path) {
  pb::FileDescriptorSet set;
  if (!set.ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("couldn't unmarshal protoset file ", path, ": not a valid FileDescriptorSet"));
  }
  std::unordered_map<std::string, const pb::FileDescriptorProto*> by_name;
  for (const auto& f : set.file()) by_name.emplace(f.name(), &f);

  const size_t built_before = built_.size();
  NamedErrorCollector errors;
  std::string failure;
  std::set<std::string> in_progress;
  std::function<const pb::FileDescriptor*(const std::string&)> build_file =
      [&](const std::string& name) -> const pb::FileDescriptor* {
    if (const pb::FileDescriptor* done = pool_->FindFileByName(name)) return done;
    const pb::FileDescriptorProto* proto = nullptr;
    pb::FileDescriptorProto well_known;
    if (auto it = by_name.find(name); it != by_name.end()) {
      proto = it->second;
    } else if (IsWellKnown(name)) {
      pb::DescriptorPool::generated_pool()->FindFileByName(name)->CopyTo(&well_known);
      proto = &well_known;
    } else {
      failure = absl::StrCat("could not resolve import \"", name, "\": not found");
      return nullptr;
    }
    if (!in_progress.insert(name).second) {
      failure = absl::StrCat("import cycle through \"", name, "\"");
      return nullptr;
    }
    for (const std::string& dep : proto->dependency()) {
      if (build_file(dep) == nullptr) return nullptr;
    }
    const pb::FileDescriptor* built = Build(*proto, &errors);
    if (built == nullptr) failure = errors.Text();
    return built;
  };

  std::vector<const pb::FileDescriptor*> roots;
  for (const auto& f : set.file()) {
    const pb::FileDescriptor* built = build_file(f.name());
    if (built == nullptr) {
      Rollback(built_before);
      return absl::InvalidArgumentError(absl::StrCat("protoset file ", path, ": ", failure));
    }
    roots.push_back(built);
  }
  return AddMethods(roots);
}

void ProtoRegistry::Rollback(size_t keep) {
  if (built_.size() == keep) return;
  built_.resize(keep);
  factory_.reset();  // its prototypes point into the pool
  pool_ = std::make_unique<pb::DescriptorPool>();
  factory_ = std::make_unique<pb::DynamicMessageFactory>(pool_.get());
  std::vector<pb::FileDescriptorProto> files = std::move(built_);
  built_.clear();
  for (const auto& f : files) Build(f, nullptr);
  for (MethodInfo& m : methods_) {
    // "/pkg.Svc/M" -> "pkg.Svc.M"; the old descriptor is gone with its pool.
    std::string name = m.full_method.substr(1);
    name[name.rfind('/')] = '.';
    m.descriptor = pool_->FindMethodByName(name);
  }
  CachePrototypes();
}

void ProtoRegistry::CachePrototypes() {
  prototypes_.clear();
  plans_->Clear();  // the pool may be new (Rollback): rebuilt below and on use
  for (MethodInfo& m : methods_) {
    for (const pb::Descriptor* type : {m.descriptor->input_type(), m.descriptor->output_type()}) {
      prototypes_.emplace(type, factory_->GetPrototype(type));
    }
    m.input_plan = &plans_->Get(m.descriptor->input_type());
    m.output_plan = &plans_->Get(m.descriptor->output_type());
  }
}

std::vector<MethodInfo> ProtoRegistry::AddMethods(const std::vector<const pb::FileDescriptor*>& roots) {
  std::set<const pb::FileDescriptor*> seen;
  std::vector<const pb::FileDescriptor*> order;
  for (const pb::FileDescriptor* f : roots) CollectClosure(f, seen, order);
  std::vector<MethodInfo> result;
  for (const pb::FileDescriptor* file : order) {
    for (int s = 0; s < file->service_count(); ++s) {
      const pb::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const pb::MethodDescriptor* method = service->method(m);
        IndexMethod(method);
        result.push_back(methods_[method_index_.at(absl::StrCat("/", service->full_name(), "/", method->name()))]);
      }
    }
  }
  CachePrototypes();
  return result;
}

void ProtoRegistry::IndexMethod(const pb::MethodDescriptor* m) {
  std::string full = absl::StrCat("/", m->service()->full_name(), "/", m->name());
  if (method_index_.count(full)) return;  // loaded before: later loads never drop it
  MethodInfo info;
  info.package = m->file()->package();
  info.service = m->service()->name();
  info.method = m->name();
  info.full_method = full;
  info.client_streaming = m->client_streaming();
  info.server_streaming = m->server_streaming();
  info.descriptor = m;
  method_index_.emplace(std::move(full), methods_.size());
  methods_.push_back(std::move(info));
}

const MethodInfo* ProtoRegistry::FindMethod(std::string_view url) const {
  if (url.empty()) return nullptr;
  auto it = url[0] == '/' ? method_index_.find(std::string(url)) : method_index_.find(absl::StrCat("/", absl::string_view(url.data(), url.size())));
  return it == method_index_.end() ? nullptr : &methods_[it->second];
}

const pb::Descriptor* ProtoRegistry::FindMessageType(std::string_view full_name) const {
  return pool_->FindMessageTypeByName(std::string(full_name));
}

const pb::Message* ProtoRegistry::Prototype(const pb::Descriptor* type) const {
  if (auto it = prototypes_.find(type); it != prototypes_.end()) return it->second;
  return factory_->GetPrototype(type);
}

}  // namespace barrage::agent::grpc_client
