#include "common/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nlohmann/json.hpp"

namespace barrage {
namespace {

using ::testing::HasSubstr;

TEST(ConfigFileTest, JsonIsOptionsOnly) {
  absl::StatusOr<ConfigFile> c = ParseConfigFile(R"({"vus": 3})", "k6.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->options_json, R"({"vus": 3})");
  EXPECT_FALSE(c->run.agents.has_value());
}

TEST(ConfigFileTest, YamlHoldsOptionsAndRunSettings) {
  absl::StatusOr<ConfigFile> c = ParseConfigFile(R"(
vus: 10
duration: 30s
thresholds:
  grpc_req_duration: ["p(95)<200"]
tags:
  build: "042"
barrage:
  listen: 0.0.0.0:7700
  expectAgents: 4
  agentTimeout: 2m
  onAgentLoss: continue
  tokenFile: /etc/barrage/token
  tls: { cert: /etc/tls/tls.crt, key: /etc/tls/tls.key }
  insecure: false
)", "run.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const nlohmann::json o = nlohmann::json::parse(c->options_json);
  EXPECT_EQ(o["vus"], 10);
  EXPECT_EQ(o["duration"], "30s");
  EXPECT_EQ(o["thresholds"]["grpc_req_duration"][0], "p(95)<200");
  EXPECT_EQ(o["tags"]["build"], "042");  // quoted: stays a string
  EXPECT_FALSE(o.contains("barrage"));
  EXPECT_EQ(c->run.listen, "0.0.0.0:7700");
  EXPECT_EQ(c->run.expect_agents, 4);
  EXPECT_EQ(c->run.agent_timeout, "2m");
  EXPECT_EQ(c->run.on_agent_loss, "continue");
  EXPECT_EQ(c->run.token_file, "/etc/barrage/token");
  EXPECT_EQ(c->run.tls_cert, "/etc/tls/tls.crt");
  EXPECT_EQ(c->run.tls_key, "/etc/tls/tls.key");
  EXPECT_FALSE(c->run.tls_ca.has_value());
  EXPECT_EQ(c->run.insecure, false);
}

TEST(ConfigFileTest, BadYamlNamesTheFileLineAndKey) {
  absl::StatusOr<ConfigFile> c = ParseConfigFile("vus: 3\nduration: [1s\n", "run.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yaml:3:"));
  c = ParseConfigFile("barrage:\n  agnets: 3\n", "run.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yml: barrage: unknown key 'agnets'"));
  c = ParseConfigFile("barrage:\n  agents: -1\n", "run.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yml: barrage.agents: expected a positive integer, got -1"));
  c = ParseConfigFile("- a\n- b\n", "run.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("run.yml: expected a map of options"));
}

}  // namespace
}  // namespace barrage
