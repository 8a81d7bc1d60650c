// Where the console's base credentials come from: the environment, a profile of the shared
// files, the instance role through IMDSv2 (a stand-in metadata service on 127.0.0.1, since no
// EC2 instance metadata service exists here), in that order.
#include "connectors/cloud/aws/credentials.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "connectors/cloud/aws/aws_client.h"
#include "connectors/cloud/time_format.h"
#include "tests/connectors/cloud/scripted_http_client.h"

namespace sextant::cloud::aws {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("sextant-creds-" + std::to_string(getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path Write(const std::string& name, const std::string& text) const {
    fs::create_directories((path_ / name).parent_path());
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }
  const fs::path& path() const { return path_; }

 private:
  static inline std::atomic<int> counter_{0};
  fs::path path_;
};

TEST(Credentials, FromTheEnvironment) {
  auto c = CredentialsFromEnvironment(MapEnvironment(
      {{"AWS_ACCESS_KEY_ID", "AKID"}, {"AWS_SECRET_ACCESS_KEY", "s"}, {"AWS_SESSION_TOKEN", "t"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "AKID");
  EXPECT_EQ(c->session_token, "t");
  EXPECT_EQ(c->source, "environment");
  auto none = CredentialsFromEnvironment(MapEnvironment({}));
  EXPECT_EQ(none.error().code, "NoCredentials");
  auto half = CredentialsFromEnvironment(MapEnvironment({{"AWS_ACCESS_KEY_ID", "AKID"}}));
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.error().code, "InvalidProfile");
  EXPECT_NE(half.error().message.find("AWS_SECRET_ACCESS_KEY"), std::string::npos);
}

TEST(Credentials, IniErrorsNameTheFileAndLine) {
  EXPECT_TRUE(ParseIni("# c\n[default]\naws_access_key_id = A\n; c\n", "f").ok());
  auto r = ParseIni("[default]\naws_access_key_id A\n", "credentials");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("credentials:2"), std::string::npos);
  EXPECT_NE(ParseIni("key = v\n", "f").status().message().find("f:1: a key before"),
            std::string::npos);
  EXPECT_NE(ParseIni("[default\n", "f").status().message().find("unterminated"), std::string::npos);
  EXPECT_NE(ParseIni("[]\n", "f").status().message().find("empty section"), std::string::npos);
}

TEST(Credentials, ProfilesFromTheCredentialsAndConfigFiles) {
  TempDir dir;
  auto creds = dir.Write(".aws/credentials",
                         "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n"
                         "[ops]\naws_access_key_id=AKIDOPS\naws_secret_access_key=s2\n"
                         "aws_session_token = tok\n");
  auto config = dir.Write(".aws/config",
                          "[profile cfg]\naws_access_key_id = AKIDCFG\naws_secret_access_key = s3\n"
                          "[profile assume]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = "
                          "default\n");
  EXPECT_EQ(CredentialsFromProfile(creds, config, "default")->access_key_id, "AKIDDEFAULT");
  auto ops = CredentialsFromProfile(creds, config, "ops");
  ASSERT_TRUE(ops.ok());
  EXPECT_EQ(ops->session_token, "tok");
  EXPECT_NE(ops->source.find("profile ops"), std::string::npos);
  EXPECT_EQ(CredentialsFromProfile(creds, config, "cfg")->access_key_id, "AKIDCFG");
  auto assume = CredentialsFromProfile(creds, config, "assume");
  ASSERT_FALSE(assume.ok());
  EXPECT_EQ(assume.error().code, "InvalidProfile");
  EXPECT_NE(assume.error().message.find("role_arn"), std::string::npos);
  EXPECT_EQ(CredentialsFromProfile(creds, config, "missing").error().code, "NoCredentials");
  auto broken = dir.Write("bad", "[default]\nnot a pair\n");
  auto b = CredentialsFromProfile(broken, config, "default");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("bad:2"), std::string::npos);
}

// A stand-in for the EC2 instance metadata service (IMDSv2 only): a session token from PUT
// /latest/api/token, required on every GET; the instance role's credentials as EC2 serves them.
class StandInImds {
 public:
  StandInImds() {
    server_.Put("/latest/api/token", [this](const httplib::Request& req, httplib::Response& res) {
      if (!req.has_header("X-aws-ec2-metadata-token-ttl-seconds")) {
        res.status = 400;
        return;
      }
      ++tokens_;
      res.set_content("imds-session-token", "text/plain");
    });
    auto authed = [](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("X-aws-ec2-metadata-token") != "imds-session-token") {
        res.status = 401;  // IMDSv1 requests are refused
        return false;
      }
      return true;
    };
    server_.Get("/latest/meta-data/iam/security-credentials/",
                [authed](const httplib::Request& req, httplib::Response& res) {
                  if (authed(req, res)) res.set_content("gpu-node-role\n", "text/plain");
                });
    server_.Get("/latest/meta-data/iam/security-credentials/gpu-node-role",
                [this, authed](const httplib::Request& req, httplib::Response& res) {
                  if (!authed(req, res)) return;
                  ++fetches_;
                  res.set_content(document_, "application/json");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~StandInImds() {
    server_.stop();
    thread_.join();
  }
  std::string Endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetDocument(std::string d) { document_ = std::move(d); }
  int fetches() const { return fetches_; }
  int tokens() const { return tokens_; }

  static std::string Document(const std::string& key, const std::string& expiration) {
    return R"({"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC",
               "AccessKeyId":")" +
           key + R"(","SecretAccessKey":"secret","Token":"session","Expiration":")" + expiration +
           R"("})";
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::string document_;
  std::atomic<int> fetches_{0};
  std::atomic<int> tokens_{0};
};

TEST(InstanceMetadataCredentials, Imdsv2TokenThenRoleCredentialsRefreshedBeforeExpiry) {
  StandInImds imds;
  imds.SetDocument(StandInImds::Document("ASIAROLE1", "2026-01-01T06:00:00Z"));
  auto now = std::chrono::system_clock::from_time_t(1'767'225'600);  // 2026-01-01T00:00:00Z
  InstanceMetadataCredentials provider(std::make_shared<CurlHttpClient>(), imds.Endpoint(),
                                       std::chrono::seconds(2), [&] { return now; });
  auto c = provider.Get();
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAROLE1");
  EXPECT_EQ(c->session_token, "session");
  EXPECT_EQ(c->source, "instance role gpu-node-role");
  EXPECT_EQ(FormatRfc3339(*c->expiration), "2026-01-01T06:00:00Z");
  EXPECT_EQ(imds.tokens(), 1);
  // Cached until five minutes before expiry.
  now += std::chrono::hours(5) + std::chrono::minutes(54);
  EXPECT_EQ(provider.Get()->access_key_id, "ASIAROLE1");
  EXPECT_EQ(imds.fetches(), 1);
  imds.SetDocument(StandInImds::Document("ASIAROLE2", "2026-01-01T12:00:00Z"));
  now += std::chrono::minutes(2);  // 05:56: inside the margin
  EXPECT_EQ(provider.Get()->access_key_id, "ASIAROLE2");
  EXPECT_EQ(imds.fetches(), 2);
  provider.Invalidate();
  EXPECT_TRUE(provider.Get().ok());
  EXPECT_EQ(imds.fetches(), 3);
}

TEST(InstanceMetadataCredentials, MalformedOrFailedDocumentsAreErrorsNotCredentials) {
  StandInImds imds;
  auto provider = [&] {
    return InstanceMetadataCredentials(std::make_shared<CurlHttpClient>(), imds.Endpoint(),
                                       std::chrono::seconds(2), nullptr);
  };
  imds.SetDocument("{not json");
  EXPECT_EQ(provider().Get().error().code, "MalformedResponse");
  imds.SetDocument(R"({"Code":"AssumeRoleUnauthorizedAccess"})");
  auto denied = provider().Get();
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.error().message.find("AssumeRoleUnauthorizedAccess"), std::string::npos);
  imds.SetDocument(R"({"Code":"Success","AccessKeyId":"A","SecretAccessKey":"s","Token":"t",
                       "Expiration":"tomorrow"})");
  EXPECT_EQ(provider().Get().error().code, "MalformedResponse");
}

TEST(DefaultCredentialsChain, EnvironmentThenProfileThenInstanceRole) {
  TempDir dir;
  dir.Write(".aws/credentials",
            "[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = s\n");
  StandInImds imds;
  imds.SetDocument(StandInImds::Document("ASIAIMDS", "2099-01-01T00:00:00Z"));
  auto chain = [&](std::map<std::string, std::string> env) {
    CredentialsChainOptions o;
    env["HOME"] = dir.path().string();
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.Endpoint();
    o.env = MapEnvironment(env);
    o.imds_timeout = std::chrono::seconds(2);
    return std::make_unique<DefaultCredentialsChain>(std::move(o));
  };
  auto env_first = chain({{"AWS_ACCESS_KEY_ID", "AKIDENV"}, {"AWS_SECRET_ACCESS_KEY", "s"}});
  EXPECT_EQ(env_first->Get()->access_key_id, "AKIDENV");
  EXPECT_EQ(env_first->Describe(), "environment");
  EXPECT_EQ(chain({})->Get()->access_key_id, "AKIDFILE");
  // A profile named explicitly and missing is an error, not a fall-through to the instance.
  auto named = chain({{"AWS_PROFILE", "nope"}})->Get();
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.error().code, "NoCredentials");
  // Without files, the instance role.
  auto imds_chain = chain({{"AWS_SHARED_CREDENTIALS_FILE", (dir.path() / "none").string()}});
  EXPECT_EQ(imds_chain->Get()->access_key_id, "ASIAIMDS");
  EXPECT_NE(imds_chain->Describe().find("instance metadata"), std::string::npos);
  // Nothing anywhere: one error naming every place tried, with a hint.
  auto nothing = chain({{"AWS_SHARED_CREDENTIALS_FILE", (dir.path() / "none").string()},
                        {"AWS_EC2_METADATA_DISABLED", "true"}})
                     ->Get();
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code, "NoCredentials");
  EXPECT_NE(nothing.error().message.find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_NE(nothing.error().message.find("disabled"), std::string::npos);
  EXPECT_FALSE(nothing.error().hint.empty());
}

std::string AssumeRoleAnswer(const std::string& key, const std::string& expiration,
                             bool with_token = true) {
  return "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
         "<AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/"
         "sextant-vendor/sextant-console</Arn></AssumedRoleUser><Credentials><AccessKeyId>" +
         key + "</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>" +
         (with_token ? "<SessionToken>session</SessionToken>" : "") + "<Expiration>" + expiration +
         "</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";
}

// The renewal schedule with the STS answers scripted (the expiry moto gives follows its own
// clock, which a test cannot move); the AssumeRole call itself is checked against moto in
// aws_provider_moto_test.cpp.
TEST(AssumeRoleCredentials, KeptUntilFiveMinutesBeforeExpiryThenAssumedAgain) {
  auto http = std::make_shared<testing::ScriptedHttpClient>();
  auto now = std::chrono::system_clock::from_time_t(1'767'225'600);  // 2026-01-01T00:00:00Z
  Credentials base;
  base.access_key_id = "AKIDBASE";
  base.secret_access_key = "s";
  AwsClientOptions o;
  o.max_attempts = 1;
  o.now = [&] { return now; };
  auto sts = std::make_shared<AwsClient>(http, std::make_shared<StaticCredentials>(base), o);
  AssumeRoleOptions ro;
  ro.role_arn = "arn:aws:iam::123456789012:role/sextant-vendor";
  ro.external_id = "ext-42";
  ro.sts_region = "eu-west-1";
  AssumeRoleCredentials role(sts, ro);

  http->Answer(200, AssumeRoleAnswer("ASIA1", "2026-01-01T01:00:00Z"));
  auto first = role.Get();
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  EXPECT_EQ(first->access_key_id, "ASIA1");
  EXPECT_EQ(first->session_token, "session");
  const auto req = http->requests()[0];
  EXPECT_EQ(req.url, "https://sts.eu-west-1.amazonaws.com/");
  EXPECT_NE(req.body.find("Action=AssumeRole"), std::string::npos);
  EXPECT_NE(req.body.find("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fsextant-vendor"),
            std::string::npos);
  EXPECT_NE(req.body.find("ExternalId=ext-42"), std::string::npos);
  EXPECT_NE(req.body.find("RoleSessionName=sextant-console"), std::string::npos);
  EXPECT_NE(req.body.find("DurationSeconds=3600"), std::string::npos);
  EXPECT_NE(testing::ScriptedHttpClient::HeaderOf(req, "Authorization").find("AKIDBASE/"),
            std::string::npos);

  now += std::chrono::minutes(54);
  EXPECT_EQ(role.Get()->access_key_id, "ASIA1");
  EXPECT_EQ(role.assumptions(), 1);
  http->Answer(200, AssumeRoleAnswer("ASIA2", "2026-01-01T02:00:00Z"));
  now += std::chrono::minutes(2);  // 00:56, inside the five minutes
  EXPECT_EQ(role.Get()->access_key_id, "ASIA2");
  EXPECT_EQ(role.assumptions(), 2);
  // Told the credentials expired (by a service): assumed again at once.
  role.Invalidate();
  http->Answer(200, AssumeRoleAnswer("ASIA3", "2026-01-01T02:00:00Z"));
  EXPECT_EQ(role.Get()->access_key_id, "ASIA3");
  // An answer without a session token is not credentials.
  role.Invalidate();
  http->Answer(200, AssumeRoleAnswer("ASIA4", "2026-01-01T02:00:00Z", false));
  auto bad = role.Get();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, "MalformedResponse");
  EXPECT_EQ(bad.error().api_call, "sts:AssumeRole");
}

}  // namespace
}  // namespace sextant::cloud::aws
