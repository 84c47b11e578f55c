// The --config file: k6's JSON config (options) or a YAML file holding the
// same options at the top level plus Barrage's run settings under
// `barrage:` (the flags of the distributed modes), so a whole run can live
// in one file. Flags given on the command line win over the file.
#ifndef BARRAGE_COMMON_CONFIG_FILE_H_
#define BARRAGE_COMMON_CONFIG_FILE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace barrage {

// `barrage:` in a YAML config; each is the flag of the same name.
struct RunSettings {
  std::optional<int> agents;                  // agents
  std::optional<std::string> listen;          // listen
  std::optional<int> expect_agents;           // expectAgents
  std::optional<std::string> agent_timeout;   // agentTimeout
  std::optional<std::string> on_agent_loss;   // onAgentLoss
  std::optional<std::string> token_file;      // tokenFile
  std::optional<std::string> tls_cert;        // tls.cert
  std::optional<std::string> tls_key;         // tls.key
  std::optional<std::string> tls_ca;          // tls.ca
  std::optional<bool> insecure;               // insecure
};

struct ConfigFile {
  std::string options_json = "{}";  // for ParseOptionsJson
  RunSettings run;
};

// `path` decides the format (.yaml/.yml: YAML, else JSON) and prefixes
// errors, which name the line for YAML and the key for both.
absl::StatusOr<ConfigFile> ParseConfigFile(const std::string& text, const std::string& path);

}  // namespace barrage

#endif  // BARRAGE_COMMON_CONFIG_FILE_H_
