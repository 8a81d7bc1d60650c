// The terminal UI's views as pure functions from a ConsoleSnapshot to a table of text cells
// (k9s's "render" layer): fleet, deployments, alerts, audit, cost, and the drill-down views of
// one target (its GPUs and deployments) and one deployment (its figures and facts). Column
// widths are fitted to the terminal here too, so what the screen shows can be tested without a
// terminal.
//
// Thread-safety: pure functions over values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ui/tui/console_snapshot.h"

namespace sextant::tui {

enum class ViewId { kFleet, kDeploy, kAlerts, kAudit, kCost, kTarget, kDeployment };
std::string_view ViewName(ViewId v);  // "fleet", "deploy", ..., "target", "deployment"

enum class Tone { kNormal, kGood, kWarn, kBad, kDim };

struct Column {
  std::string title;
  bool right = false;   // numbers are right-aligned
  bool shrink = false;  // may be cut to fit (long free text); others keep their width
};

struct Row {
  std::vector<std::string> cells;
  Tone tone = Tone::kNormal;
  // Where Enter leads (kFleet with empty context: nowhere).
  ViewId drill = ViewId::kFleet;
  std::string drill_context;
  bool drillable = false;
  // The deployment this row is, for actions (empty target when it is none).
  std::string target;
  std::string deployment;
  int replicas_desired = 0;
};

struct ViewTable {
  std::string title;  // "fleet", "target eu1", ...
  std::vector<Column> columns;
  std::vector<Row> rows;
  std::string note;  // a line under the table (e.g. why cost is not available)
};

// `context` is the target name for kTarget and "target/deployment" for kDeployment.
ViewTable BuildView(ViewId view, const ConsoleSnapshot& snap, const std::string& context);

// Rows whose cells contain `filter` (case-insensitive); all rows when it is empty.
std::vector<const Row*> FilterRows(const ViewTable& table, std::string_view filter);

// Column widths that fit `width` characters with one space between columns: every column as
// wide as its widest cell (and title); when that is too wide, shrinkable columns are cut first,
// then every column down to its title's width or 3, whichever is larger.
std::vector<int> FitColumns(const ViewTable& table, const std::vector<const Row*>& rows, int width);

// `text` cut or padded to exactly `width` characters (a cut ends in '~').
std::string FitText(std::string_view text, int width, bool right = false);

}  // namespace sextant::tui
