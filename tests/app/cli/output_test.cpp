#include "app/cli/output.h"

#include <gtest/gtest.h>

#include <sstream>

namespace sextant::cli {
namespace {

OutputTable Sample() {
  OutputTable t;
  t.columns = {"target", "gpus", "cost_usd", "note"};
  t.AddRow({"eu-prod", 8, 12.5, nullptr}, Tone::kGood);
  t.AddRow({"us, east", 1, 0.3333333, "say \"hi\""}, Tone::kBad);
  return t;
}

TEST(Output, TableAlignsColumnsWithoutColourOffATerminal) {
  std::ostringstream out;
  PrintTable(Sample(), OutputFormat::kTable, out);
  EXPECT_EQ(out.str(),
            "TARGET    GPUS  COST_USD  NOTE\n"
            "eu-prod   8     12.5      -\n"
            "us, east  1     0.3333    say \"hi\"\n");
  std::ostringstream colour;
  PrintTable(Sample(), OutputFormat::kTable, colour, true);
  EXPECT_NE(colour.str().find("\x1b[31mus, east"), std::string::npos);
}

TEST(Output, JsonKeepsTypes) {
  std::ostringstream out;
  PrintTable(Sample(), OutputFormat::kJson, out);
  auto j = nlohmann::json::parse(out.str());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["gpus"], 8);
  EXPECT_DOUBLE_EQ(j[0]["cost_usd"].get<double>(), 12.5);
  EXPECT_TRUE(j[0]["note"].is_null());
  EXPECT_EQ(j[1]["target"], "us, east");
}

TEST(Output, CsvQuotesPerRfc4180) {
  std::ostringstream out;
  PrintTable(Sample(), OutputFormat::kCsv, out);
  EXPECT_EQ(out.str(),
            "target,gpus,cost_usd,note\r\n"
            "eu-prod,8,12.5,\r\n"
            "\"us, east\",1,0.3333,\"say \"\"hi\"\"\"\r\n");
}

TEST(Output, ParsesFormatNames) {
  EXPECT_EQ(*ParseOutputFormat("csv"), OutputFormat::kCsv);
  auto bad = ParseOutputFormat("yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'yaml'"), std::string::npos);
}

}  // namespace
}  // namespace sextant::cli
