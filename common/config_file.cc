#include "common/config_file.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace barrage {
namespace {

// A value in an error message; bytes that are not UTF-8 become U+FFFD
// (dump() would throw on them).
std::string Show(const nlohmann::json& v) { return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }


using nlohmann::json;

// YAML scalars carry no type; they become what they read as (integer,
// number, boolean, null), else strings, as a YAML 1.2 core schema would.
json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.Scalar();
      if (node.Tag() == "!") return s;  // quoted: always a string
      int64_t i;
      double d;
      if (absl::SimpleAtoi(s, &i)) return i;
      if (absl::SimpleAtod(s, &d) && s.find_first_not_of("0123456789.eE+-") == std::string::npos) return d;
      if (s == "true" || s == "false") return s == "true";
      if (s == "null" || s == "~") return nullptr;
      return s;
    }
    default:
      return nullptr;
  }
}

absl::Status ReadSettings(const json& b, const std::string& where, RunSettings& run) {
  if (!b.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a map"));
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string& k = it.key();
    const json& v = *it;
    const std::string w = absl::StrCat(where, ".", k);
    auto str = [&](std::optional<std::string>& out) -> absl::Status {
      if (!v.is_string()) return absl::InvalidArgumentError(absl::StrCat(w, ": expected a string, got ", Show(v)));
      out = v.get<std::string>();
      return absl::OkStatus();
    };
    auto num = [&](std::optional<int>& out) -> absl::Status {
      if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > 1000000) || v.get<int64_t>() < 1 ||
          v.get<int64_t>() > 1000000) {
        return absl::InvalidArgumentError(absl::StrCat(w, ": expected a positive integer, got ", Show(v)));
      }
      out = v.get<int>();
      return absl::OkStatus();
    };
    absl::Status st;
    if (k == "agents") st = num(run.agents);
    else if (k == "expectAgents") st = num(run.expect_agents);
    else if (k == "listen") st = str(run.listen);
    else if (k == "agentTimeout") st = str(run.agent_timeout);
    else if (k == "onAgentLoss") st = str(run.on_agent_loss);
    else if (k == "tokenFile") st = str(run.token_file);
    else if (k == "insecure") {
      if (!v.is_boolean()) return absl::InvalidArgumentError(absl::StrCat(w, ": expected true or false, got ", Show(v)));
      run.insecure = v.get<bool>();
    } else if (k == "tls") {
      if (!v.is_object()) return absl::InvalidArgumentError(absl::StrCat(w, ": expected a map of cert, key, ca"));
      for (auto t = v.begin(); t != v.end(); ++t) {
        if (!t->is_string()) return absl::InvalidArgumentError(absl::StrCat(w, ".", t.key(), ": expected a path"));
        if (t.key() == "cert") run.tls_cert = t->get<std::string>();
        else if (t.key() == "key") run.tls_key = t->get<std::string>();
        else if (t.key() == "ca") run.tls_ca = t->get<std::string>();
        else return absl::InvalidArgumentError(absl::StrCat(w, ": unknown key '", t.key(), "' (cert, key, ca)"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": unknown key '", k,
          "' (agents, listen, expectAgents, agentTimeout, onAgentLoss, tokenFile, tls, insecure)"));
    }
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ConfigFile> ParseConfigFile(const std::string& text, const std::string& path) {
  ConfigFile out;
  if (!absl::EndsWith(path, ".yaml") && !absl::EndsWith(path, ".yml")) {
    out.options_json = text;  // k6's JSON config: options only
    return out;
  }
  json root;
  try {
    root = ToJson(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  if (root.is_null()) return out;
  if (!root.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": expected a map of options"));
  if (root.contains("barrage")) {
    absl::Status st = ReadSettings(root["barrage"], absl::StrCat(path, ": barrage"), out.run);
    if (!st.ok()) return st;
    root.erase("barrage");
  }
  // A YAML file may hold bytes that are not UTF-8; they become U+FFFD
  // rather than an exception (found by tests/fuzz/options_fuzz).
  out.options_json = root.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

}  // namespace barrage
