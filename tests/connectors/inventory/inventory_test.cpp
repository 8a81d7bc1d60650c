#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "app/agent/metrics/registry.h"
#include "connectors/inventory/cloud_context.h"
#include "connectors/inventory/gpu_inventory.h"

namespace sextant::inventory {
namespace {

namespace fs = std::filesystem;

TEST(DeviceInventory, ReportsTheCpuWhenNoGpuLibraryLoads) {
  DeviceInventory inv(
      {.nvml_library = "libnvidia-ml-absent.so.1", .rocm_smi_library = "librocm_smi64-absent.so"});
  const agent::InventoryInfo snap = inv.Snapshot();
  ASSERT_EQ(snap.devices.size(), 1u);
  EXPECT_EQ(snap.source, "cpu");
  const agent::DeviceInfo& cpu = snap.devices[0];
  EXPECT_EQ(cpu.id, "cpu");
  EXPECT_EQ(cpu.kind, "cpu");
  EXPECT_FALSE(cpu.model.empty());
  EXPECT_EQ(cpu.cores, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_GT(cpu.memory_total_bytes, 0);
  EXPECT_GT(cpu.memory_used_bytes, 0);
  EXPECT_LE(cpu.memory_used_bytes, cpu.memory_total_bytes);
  EXPECT_FALSE(snap.node.empty());
  EXPECT_GT(snap.observed_at_unix_ms, 0);
  const auto notes = inv.notes();
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_NE(notes[0].find("nvml:"), std::string::npos);
  EXPECT_NE(notes[1].find("rocm-smi:"), std::string::npos);
}

TEST(DeviceInventory, DefaultLibrariesNeverFailAndAlwaysReportADevice) {
  DeviceInventory inv;  // loads the real libraries where they exist
  const agent::InventoryInfo snap = inv.Snapshot();
  ASSERT_FALSE(snap.devices.empty());
  for (const auto& d : snap.devices) {
    EXPECT_FALSE(d.id.empty());
    EXPECT_TRUE(d.kind == "cpu" || d.kind == "cuda" || d.kind == "rocm") << d.kind;
    EXPECT_GT(d.memory_total_bytes, 0) << d.id;
  }
}

TEST(DeviceInventory, CpuUtilizationComesFromProcStatDeltas) {
  std::string tmpl = (fs::temp_directory_path() / "sextant-proc-XXXXXX").string();
  const fs::path proc = mkdtemp(tmpl.data());
  std::ofstream(proc / "cpuinfo") << "processor\t: 0\nmodel name\t: Test CPU 9000\n"
                                  << "processor\t: 1\nmodel name\t: Test CPU 9000\n";
  std::ofstream(proc / "meminfo") << "MemTotal:       1000 kB\nMemAvailable:    250 kB\n";
  std::ofstream(proc / "stat") << "cpu  100 0 100 700 100 0 0 0 0 0\n";
  DeviceInventory inv({.nvml_library = "", .rocm_smi_library = "", .proc_dir = proc});
  agent::DeviceInfo first = inv.CpuDevice();
  EXPECT_EQ(first.model, "Test CPU 9000");
  EXPECT_EQ(first.cores, 2);
  EXPECT_EQ(first.memory_total_bytes, 1000 * 1024);
  EXPECT_EQ(first.memory_used_bytes, 750 * 1024);
  EXPECT_EQ(first.utilization, -1);  // no previous sample
  // 300 more busy jiffies out of 400: 75 %.
  std::ofstream(proc / "stat") << "cpu  250 0 250 800 100 0 0 0 0 0\n";
  agent::DeviceInfo second = inv.CpuDevice();
  EXPECT_DOUBLE_EQ(second.utilization, 0.75);
  fs::remove_all(proc);
}

TEST(DeviceInventory, ExportsDeviceGaugesThatParse) {
  DeviceInventory inv({.nvml_library = "", .rocm_smi_library = ""});
  agent::Registry registry;
  auto handle = ExportDeviceMetrics(inv, registry, std::chrono::milliseconds(0));
  registry.RenderText();  // first sample: utilization needs two, a clock tick apart
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto parsed = agent::ParseText(registry.RenderText());
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_GT(parsed->Sum("sextant_device_memory_total_bytes", {{"device", "cpu"}}), 0);
  EXPECT_GT(parsed->Sum("sextant_device_memory_used_bytes", {{"kind", "cpu"}}), 0);
  EXPECT_TRUE(parsed->Has("sextant_device_utilization_ratio"));
  EXPECT_FALSE(parsed->Has("sextant_device_power_watts"));  // the CPU reports none
  handle.reset();                                           // detached: scraping no longer samples
  EXPECT_TRUE(agent::ParseText(registry.RenderText()).ok());
}

// ---- Cloud context -----------------------------------------------------------------------------

// A local imitation of the instance metadata services on 127.0.0.1.
class FakeMetadata {
 public:
  explicit FakeMetadata(const std::string& kind,
                        const std::string& aws_ids = R"("accountId":"123456789012",
                          "instanceId":"i-0123456789abcdef0")") {
    if (kind == "aws") {
      server_.Put("/latest/api/token", [](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("X-aws-ec2-metadata-token-ttl-seconds").empty()) {
          res.status = 400;
          return;
        }
        res.set_content("tok-123", "text/plain");
      });
      auto authed = [](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("X-aws-ec2-metadata-token") != "tok-123") {
          res.status = 401;  // IMDSv2: no token, no answer
          return false;
        }
        return true;
      };
      server_.Get("/latest/dynamic/instance-identity/document",
                  [authed, aws_ids](const httplib::Request& req, httplib::Response& res) {
                    if (!authed(req, res)) return;
                    res.set_content(R"({"region":"eu-west-1","availabilityZone":"eu-west-1b",
                      "instanceType":"g5.xlarge",)" +
                                        aws_ids + "}",
                                    "application/json");
                  });
      server_.Get("/latest/meta-data/instance-life-cycle",
                  [authed](const httplib::Request& req, httplib::Response& res) {
                    if (!authed(req, res)) return;
                    res.set_content("spot", "text/plain");
                  });
    } else if (kind == "gcp") {
      server_.Get(R"(/computeMetadata/v1/(.*))",
                  [](const httplib::Request& req, httplib::Response& res) {
                    if (req.get_header_value("Metadata-Flavor") != "Google") {
                      res.status = 403;
                      return;
                    }
                    const std::string what = req.matches[1];
                    std::string body;
                    if (what == "project/project-id") body = "my-project";
                    if (what == "instance/id") body = "4520031799277581759";
                    if (what == "instance/zone") body = "projects/42/zones/us-central1-a";
                    if (what == "instance/machine-type")
                      body = "projects/42/machineTypes/a2-highgpu-1g";
                    if (what == "instance/scheduling/preemptible") body = "FALSE";
                    if (what == "instance/scheduling/provisioning-model") body = "STANDARD";
                    res.set_header("Metadata-Flavor", "Google");
                    res.set_content(body, "text/plain");
                  });
    } else if (kind == "azure") {
      server_.Get("/metadata/instance", [](const httplib::Request& req, httplib::Response& res) {
        if (req.get_header_value("Metadata") != "true") {
          res.status = 400;
          return;
        }
        res.set_content(
            R"({"compute":{"subscriptionId":"6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c","location":"westeurope",
          "zone":"2","vmSize":"Standard_NC24ads_A100_v4","priority":"Spot",
          "vmId":"0b9e6a3e-9c1f-4d3b-8f5e-1a2b3c4d5e6f"}})",
            "application/json");
      });
    }
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeMetadata() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// A port on 127.0.0.1 that refuses connections.
std::string ClosedEndpoint() {
  httplib::Server s;
  const int port = s.bind_to_any_port("127.0.0.1");
  return "http://127.0.0.1:" + std::to_string(port);  // closed when s goes away
}

CloudContextOptions LocalOnly() {
  CloudContextOptions o;
  o.aws_endpoint = o.gcp_endpoint = o.azure_endpoint = ClosedEndpoint();
  return o;
}

TEST(CloudContext, DisabledLookupsGiveOnPremWithoutTouchingTheNetwork) {
  CloudContextOptions o;
  o.metadata_lookups = false;
  CloudContextProbe probe(o);
  const auto ctx = probe.Context();
  EXPECT_EQ(ctx.provider, "on-prem");
  EXPECT_EQ(ctx.source, "default");
  EXPECT_NE(probe.note().find("disabled"), std::string::npos);
}

TEST(CloudContext, ConfigOverrideWins) {
  CloudContextOptions o = LocalOnly();
  agent::CloudContextInfo fixed;
  fixed.provider = "aws";
  fixed.region = "us-east-1";
  o.override_context = fixed;
  const auto ctx = CloudContextProbe(o).Context();
  EXPECT_EQ(ctx.provider, "aws");
  EXPECT_EQ(ctx.region, "us-east-1");
  EXPECT_EQ(ctx.source, "config");
}

TEST(CloudContext, AwsImdsV2WithToken) {
  FakeMetadata aws("aws");
  CloudContextOptions o = LocalOnly();
  o.aws_endpoint = aws.url();
  const auto ctx = CloudContextProbe(o).Context();
  EXPECT_EQ(ctx.provider, "aws");
  EXPECT_EQ(ctx.account, "123456789012");
  EXPECT_EQ(ctx.region, "eu-west-1");
  EXPECT_EQ(ctx.zone, "eu-west-1b");
  EXPECT_EQ(ctx.instance_type, "g5.xlarge");
  EXPECT_EQ(ctx.instance_id, "i-0123456789abcdef0");
  EXPECT_TRUE(ctx.spot);
  EXPECT_EQ(ctx.source, "imds");
}

TEST(CloudContext, MalformedIdsFromTheMetadataServiceAreLeftOutAndNoted) {
  FakeMetadata aws("aws", R"("accountId":"1234","instanceId":"i-0123456789abcdef0; DROP")");
  CloudContextOptions o = LocalOnly();
  o.aws_endpoint = aws.url();
  CloudContextProbe probe(o);
  const auto ctx = probe.Context();
  // Where the agent runs still holds; what the console would match on does not.
  EXPECT_EQ(ctx.provider, "aws");
  EXPECT_EQ(ctx.region, "eu-west-1");
  EXPECT_EQ(ctx.source, "imds");
  EXPECT_EQ(ctx.account, "");
  EXPECT_EQ(ctx.instance_id, "");
  EXPECT_NE(probe.note().find("left out: account id '1234' is malformed for aws"),
            std::string::npos)
      << probe.note();
  EXPECT_NE(probe.note().find("left out: instance id 'i-0123456789abcdef0; DROP'"),
            std::string::npos)
      << probe.note();
}

TEST(CloudContext, GcpMetadata) {
  FakeMetadata gcp("gcp");
  CloudContextOptions o = LocalOnly();
  o.gcp_endpoint = gcp.url();
  const auto ctx = CloudContextProbe(o).Context();
  EXPECT_EQ(ctx.provider, "gcp");
  EXPECT_EQ(ctx.account, "my-project");
  EXPECT_EQ(ctx.region, "us-central1");
  EXPECT_EQ(ctx.zone, "us-central1-a");
  EXPECT_EQ(ctx.instance_type, "a2-highgpu-1g");
  EXPECT_EQ(ctx.instance_id, "4520031799277581759");
  EXPECT_FALSE(ctx.spot);
}

TEST(CloudContext, AzureMetadata) {
  FakeMetadata azure("azure");
  CloudContextOptions o = LocalOnly();
  o.azure_endpoint = azure.url();
  const auto ctx = CloudContextProbe(o).Context();
  EXPECT_EQ(ctx.provider, "azure");
  EXPECT_EQ(ctx.account, "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c");
  EXPECT_EQ(ctx.region, "westeurope");
  EXPECT_EQ(ctx.zone, "2");
  EXPECT_EQ(ctx.instance_type, "Standard_NC24ads_A100_v4");
  EXPECT_EQ(ctx.instance_id, "0b9e6a3e-9c1f-4d3b-8f5e-1a2b3c4d5e6f");
  EXPECT_TRUE(ctx.spot);
}

TEST(CloudContext, NoServiceAnsweringIsOnPremWithinTheTimeout) {
  FakeMetadata wrong_service("gcp");  // answers GCP paths only: not an AWS or Azure server
  CloudContextOptions o = LocalOnly();
  o.aws_endpoint = wrong_service.url();
  o.azure_endpoint = wrong_service.url();
  o.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  CloudContextProbe probe(o);
  const auto ctx = probe.Context();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ctx.provider, "on-prem");
  EXPECT_EQ(ctx.source, "default");
  EXPECT_LT(took, std::chrono::seconds(2));
  // Cached: the second call does not ask again.
  EXPECT_EQ(probe.Context().provider, "on-prem");
}

}  // namespace
}  // namespace sextant::inventory
