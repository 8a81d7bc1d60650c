// agent.yaml: every field, defaults, relative paths, and errors with file:line:column.
#include "app/agent/config/agent_config.h"

#include <gtest/gtest.h>

namespace sextant::agent {
namespace {

TEST(AgentConfig, ParsesEveryField) {
  const char* text = R"(name: pool-a
grpc:
  listen: 127.0.0.1:7443
  ca: tls/ca.pem
  cert: /etc/x/server.pem
  key: file:///etc/x/server.key
http:
  listen: 0.0.0.0:8081
policy: policy.yaml
state_dir: /var/lib/x
model_store: file:///models
encryption_at_rest: true
cloud:
  provider: aws
  account: "123456789012"
  region: eu-west-1
  zone: eu-west-1a
  instance_type: g5.xlarge
  instance_id: i-0123456789abcdef0
  spot: true
limits:
  max_queue: 8
  shutdown_grace_ms: 2000
)";
  auto c = AgentConfig::Parse(text, "agent.yaml", "/etc/sextant-agent");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->name, "pool-a");
  EXPECT_EQ(c->grpc_listen, "127.0.0.1:7443");
  EXPECT_EQ(c->grpc_ca, "/etc/sextant-agent/tls/ca.pem");
  EXPECT_EQ(c->grpc_cert, "/etc/x/server.pem");
  EXPECT_EQ(c->grpc_key, "/etc/x/server.key");
  EXPECT_EQ(c->http_listen, "0.0.0.0:8081");
  EXPECT_EQ(c->policy, "/etc/sextant-agent/policy.yaml");
  EXPECT_EQ(c->model_store, "/models");
  EXPECT_TRUE(c->encryption_at_rest);
  ASSERT_TRUE(c->cloud.has_value());
  EXPECT_EQ(c->cloud->provider, "aws");
  EXPECT_EQ(c->cloud->account, "123456789012");
  EXPECT_TRUE(c->cloud->spot);
  EXPECT_EQ(c->cloud->instance_id, "i-0123456789abcdef0");
  EXPECT_EQ(c->cloud->source, "config");
  EXPECT_EQ(c->limits.max_queue, 8);
  EXPECT_EQ(c->limits.shutdown_grace_ms, 2000);
  EXPECT_EQ(c->limits.max_batch, 16);  // default kept
}

TEST(AgentConfig, DefaultsFollowTheSharedConventions) {
  auto c = AgentConfig::Parse("", "agent.yaml", "/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->grpc_listen, "0.0.0.0:7443");
  // The inference API listens on loopback unless the file opens it to a network.
  EXPECT_EQ(c->http_listen, "127.0.0.1:8080");
  EXPECT_FALSE(c->http_metrics_need_key);
  EXPECT_EQ(c->http_limits.max_connections_per_client, 256);
  EXPECT_EQ(c->http_limits.header_timeout_ms, 10000);
  EXPECT_EQ(c->state_dir, "/var/lib/sextant-agent");
  EXPECT_FALSE(c->cloud.has_value());
}

void ExpectError(const std::string& text, const std::string& where, const std::string& what) {
  auto c = AgentConfig::Parse(text, "agent.yaml", "/");
  ASSERT_FALSE(c.ok()) << text;
  EXPECT_NE(c.status().message().find(where), std::string::npos) << c.status().message();
  EXPECT_NE(c.status().message().find(what), std::string::npos) << c.status().message();
}

TEST(AgentConfig, ErrorsNameLineAndColumn) {
  ExpectError("grpc:\n  listen: [1, 2\n", "agent.yaml:", "malformed YAML");
  ExpectError("grpc:\n  lisen: 1.2.3.4:1\n", "agent.yaml:2:3", "unknown key 'lisen'");
  ExpectError("grpc:\n  listen: nowhere\n", "agent.yaml:2:11", "host:port");
  ExpectError("limits:\n  max_queue: lots\n", "agent.yaml:2:14", "integer");
  ExpectError("limits:\n  max_queue: 0\n", "agent.yaml:2:14", "must be in [1, 100000]");
  ExpectError("cloud:\n  provider: moon\n", "agent.yaml:2:13", "aws, gcp, azure, on-prem");
  ExpectError("encryption_at_rest: maybe\n", "agent.yaml:1:21", "true or false");
  // The console matches agents with the account's instances by these: malformed ones are
  // refused where they are written, with the shape the provider uses.
  ExpectError("cloud:\n  provider: aws\n  instance_id: i-12345\n", "agent.yaml:3:16",
              "cloud.instance_id: instance id 'i-12345' is malformed for aws (expected i- and 8 or "
              "17 hex digits)");
  ExpectError("cloud:\n  provider: aws\n  instance_id: \"i-0123456789abcdef0; drop\"\n",
              "agent.yaml:3:16", "cloud.instance_id");
  ExpectError("cloud:\n  provider: azure\n  instance_id: \"12\"\n", "agent.yaml:3:16", "vmId UUID");
  ExpectError("cloud:\n  provider: on-prem\n  instance_id: \"i-0123456789abcdef0\"\n",
              "agent.yaml:3:16", "has no instance ids");
  ExpectError("cloud:\n  provider: aws\n  account: \"12345\"\n", "agent.yaml:3:12",
              "12 decimal digits");
  ExpectError("http:\n  cert: a.pem\n", "agent.yaml:2:3", "together");
  ExpectError("http:\n  client_ca: ca.pem\n", "agent.yaml:2:14", "needs TLS");
  ExpectError("http:\n  metrics: public\n", "agent.yaml:2:12", "open or key");
  ExpectError("http:\n  limits:\n    header_timeout_ms: 0\n", "agent.yaml:3:24",
              "must be in [100, 600000]");
  ExpectError("http:\n  limits:\n    max_conections: 5\n", "agent.yaml:3:5",
              "unknown key 'max_conections' in http.limits");
}

TEST(AgentConfig, HttpSectionTlsClientCertificatesMetricsAndLimits) {
  const char* text = R"(http:
  listen: 0.0.0.0:8443
  cert: tls/http.pem
  key: tls/http.key
  client_ca: tls/clients.pem
  metrics: key
  limits:
    max_connections: 1000
    max_connections_per_client: 600
    header_timeout_ms: 2000
    idle_timeout_ms: 1000
    body_timeout_ms: 3000
    write_timeout_ms: 4000
    max_body_bytes: 65536
    max_json_depth: 16
    max_json_values: 1000
    workers: 4
)";
  auto c = AgentConfig::Parse(text, "agent.yaml", "/etc/sextant-agent");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->http_listen, "0.0.0.0:8443");
  EXPECT_EQ(c->http_client_ca, "/etc/sextant-agent/tls/clients.pem");
  EXPECT_TRUE(c->http_metrics_need_key);
  const HttpLimits& l = c->http_limits;
  EXPECT_EQ(l.max_connections, 1000);
  EXPECT_EQ(l.max_connections_per_client, 600);
  EXPECT_EQ(l.header_timeout_ms, 2000);
  EXPECT_EQ(l.idle_timeout_ms, 1000);
  EXPECT_EQ(l.body_timeout_ms, 3000);
  EXPECT_EQ(l.write_timeout_ms, 4000);
  EXPECT_EQ(l.max_body_bytes, 65536);
  EXPECT_EQ(l.max_json_depth, 16);
  EXPECT_EQ(l.max_json_values, 1000);
  EXPECT_EQ(l.workers, 4);
}

TEST(AgentConfig, SplitHostPort) {
  auto a = SplitHostPort("[::1]:7443", "x");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "::1");
  EXPECT_EQ(a->second, 7443);
  EXPECT_FALSE(SplitHostPort("host:99999", "x").ok());
  EXPECT_FALSE(SplitHostPort("host:", "x").ok());
  EXPECT_FALSE(SplitHostPort("host:12a", "x").ok());
}

}  // namespace
}  // namespace sextant::agent

namespace sextant::agent {
namespace {

TEST(AgentConfig, ConsoleKeysAreAListOfPemFilesResolvedAgainstTheConfigDir) {
  auto c = AgentConfig::Parse("console_keys:\n  - keys/acme.pem\n  - /etc/k/other.pem\n",
                              "agent.yaml", "/etc/sextant-agent");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_EQ(c->console_keys.size(), 2u);
  EXPECT_EQ(c->console_keys[0], "/etc/sextant-agent/keys/acme.pem");
  EXPECT_EQ(c->console_keys[1], "/etc/k/other.pem");
  auto none = AgentConfig::Parse("console_keys: []\n", "agent.yaml", "/");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->console_keys.empty());

  auto scalar = AgentConfig::Parse("name: a\nconsole_keys: acme.pem\n", "agent.yaml", "/");
  ASSERT_FALSE(scalar.ok());
  EXPECT_EQ(scalar.status().message(), "agent.yaml:2:15: console_keys must be a list of PEM files");
  auto nested = AgentConfig::Parse("console_keys:\n  - {a: 1}\n", "agent.yaml", "/");
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("agent.yaml:2:5: console_keys: each entry"),
            std::string::npos)
      << nested.status().message();
}

}  // namespace
}  // namespace sextant::agent
