#include "ui/tui/terminal_ui.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ui/tui/views.h"

// curses last: it defines macros (timeout, erase, clear, move, OK, ERR ...) that would clash
// with names in the headers above.
#include <curses.h>

namespace sextant::tui {

std::string_view ActionName(ActionKind k) {
  switch (k) {
    case ActionKind::kScale:
      return "scale";
    case ActionKind::kRollback:
      return "rollback";
    case ActionKind::kRevalidate:
      return "re-run validation";
  }
  return "?";
}

namespace {

volatile std::sig_atomic_t g_quit_signal = 0;
void OnQuitSignal(int) { g_quit_signal = 1; }

constexpr int kCtrlC = 3;
constexpr int kCtrlB = 2;
constexpr int kCtrlF = 6;
constexpr int kEsc = 27;

enum class Mode { kNormal, kCommand, kFilter, kHelp, kConfirm, kReplicas };

struct Frame {
  ViewId view = ViewId::kFleet;
  std::string context;
  std::string filter;
  int selected = 0;
  int top = 0;
  std::string selected_key;  // keeps the selection on the same row across updates
};

struct PendingAction {
  ActionKind kind = ActionKind::kScale;
  DeploymentRef ref;
  int replicas = 0;
};

std::optional<ViewId> RootView(const std::string& name) {
  if (name == "fleet" || name == "f" || name == "targets") return ViewId::kFleet;
  if (name == "deploy" || name == "dp" || name == "deployments" || name == "d") {
    return ViewId::kDeploy;
  }
  if (name == "alerts" || name == "a") return ViewId::kAlerts;
  if (name == "audit") return ViewId::kAudit;
  if (name == "cost" || name == "c") return ViewId::kCost;
  return std::nullopt;
}

std::string RowKey(const Row& r) {
  std::string k;
  for (size_t i = 0; i < r.cells.size() && i < 2; ++i) k += r.cells[i] + "\x1f";
  return k;
}

class TerminalUi {
 public:
  TerminalUi(const TerminalUiOptions& o, SnapshotPoller& poller, ConsoleActions* actions)
      : options_(o), poller_(poller), actions_(o.readonly ? nullptr : actions) {
    Frame f;
    f.view = RootView(o.initial_view).value_or(ViewId::kFleet);
    stack_.push_back(f);
  }
  ~TerminalUi() {
    if (worker_.joinable()) worker_.join();
  }

  void SetUpColours() {
    const char* no_colour = std::getenv("NO_COLOR");
    colour_ = has_colors() && (no_colour == nullptr || *no_colour == '\0');
    if (!colour_) return;
    start_color();
    use_default_colors();
    init_pair(1, COLOR_GREEN, -1);
    init_pair(2, COLOR_YELLOW, -1);
    init_pair(3, COLOR_RED, -1);
    init_pair(4, COLOR_CYAN, -1);
    init_pair(5, COLOR_BLACK, COLOR_CYAN);
  }

  int Loop() {
    while (!quit_) {
      if (g_quit_signal) break;
      CollectActionResult();
      snap_ = poller_.Latest();
      Draw();
      const int ch = getch();
      if (ch == ERR) continue;
      HandleKey(ch);
    }
    return 0;
  }

 private:
  attr_t ToneAttr(Tone t) const {
    switch (t) {
      case Tone::kGood:
        return colour_ ? COLOR_PAIR(1) : A_NORMAL;
      case Tone::kWarn:
        return colour_ ? COLOR_PAIR(2) : A_UNDERLINE;
      case Tone::kBad:
        return colour_ ? (COLOR_PAIR(3) | A_BOLD) : A_BOLD;
      case Tone::kDim:
        return A_DIM;
      case Tone::kNormal:
        break;
    }
    return A_NORMAL;
  }

  // Writes `text` at (y, x), cut to the screen's width.
  void Put(int y, int x, const std::string& text, attr_t attr = A_NORMAL) {
    int h, w;
    getmaxyx(stdscr, h, w);
    if (y < 0 || y >= h || x >= w) return;
    const std::string cut = text.size() > static_cast<size_t>(w - x) ? text.substr(0, w - x) : text;
    attron(attr);
    mvaddnstr(y, x, cut.c_str(), static_cast<int>(cut.size()));
    attroff(attr);
  }

  // The bottom line is written without its last cell: writing the bottom-right corner scrolls
  // some terminals.
  void PutLine(int y, const std::string& text, attr_t attr = A_NORMAL) {
    int h, w;
    getmaxyx(stdscr, h, w);
    const int width = std::max(0, w - (y == h - 1 ? 1 : 0));
    std::string line = text.substr(0, std::min<size_t>(text.size(), width));
    line.resize(width, ' ');  // the whole line carries the row's attribute
    Put(y, 0, line, attr);
  }

  Frame& top() { return stack_.back(); }

  ViewTable CurrentTable() {
    if (!snap_) {
      ViewTable t;
      t.title = std::string(ViewName(top().view));
      t.note = "reading the console store ...";
      return t;
    }
    return BuildView(top().view, *snap_, top().context);
  }

  void Draw() {
    int h, w;
    getmaxyx(stdscr, h, w);
    erase();
    const console::TimeMs now = snap_ ? snap_->loaded_at : console::NowMs();
    // Header, two lines: who the console is; how the fleet is and how fresh the data is.
    std::string who = "Sextant";
    if (snap_ && !snap_->identity.empty()) {
      who += "  " + snap_->identity;
      if (!snap_->role.empty()) who += " (" + snap_->role + ")";
    } else if (!options_.state_label.empty()) {
      who += "  state " + options_.state_label;
    }
    PutLine(0, " " + who, colour_ ? (COLOR_PAIR(4) | A_BOLD) : A_BOLD);
    std::string status;
    if (snap_) {
      status = " targets " + std::to_string(snap_->targets_connected) + "/" +
               std::to_string(snap_->targets.size()) + " connected  alerts " +
               std::to_string(snap_->alerts.size()) + "  updated " +
               FormatClockTime(snap_->last_update, now);
      if (!snap_->error.empty()) status += "  STORE: " + snap_->error;
    } else {
      status = " targets -  loading";
    }
    if (options_.readonly) status += "  [read-only]";
    int crit = 0;
    if (snap_) {
      for (const auto& a : snap_->alerts) crit += a.severity == AlertSeverity::kCritical;
    }
    PutLine(1, status,
            crit > 0 ? ToneAttr(Tone::kBad)
                     : (snap_ && !snap_->alerts.empty() ? ToneAttr(Tone::kWarn) : A_NORMAL));

    const ViewTable table = CurrentTable();
    const auto rows = FilterRows(table, top().filter);
    ClampSelection(rows);

    // Title bar: the view, the count, the filter, the path of drill-downs.
    std::string path;
    for (size_t i = 0; i < stack_.size(); ++i) {
      path += (i ? " > " : "") + std::string(ViewName(stack_[i].view));
    }
    std::string title = " " + table.title + " [" + std::to_string(rows.size());
    if (rows.size() != table.rows.size()) title += "/" + std::to_string(table.rows.size());
    title += "]";
    if (!top().filter.empty()) title += "  /" + top().filter;
    if (stack_.size() > 1) title += "   " + path;
    PutLine(2, title, colour_ ? COLOR_PAIR(5) : A_REVERSE);

    // One space of margin on each side; one between columns.
    const auto widths = FitColumns(table, rows, w - 2);
    auto render = [&](const std::vector<std::string>& cells) {
      std::string line;
      for (size_t i = 0; i < table.columns.size(); ++i) {
        if (widths[i] <= 0) continue;
        const std::string cell = i < cells.size() ? cells[i] : "";
        line += " " + FitText(cell, widths[i], table.columns[i].right);
      }
      return line;
    };
    std::vector<std::string> titles;
    for (const auto& c : table.columns) titles.push_back(c.title);
    PutLine(3, render(titles), A_BOLD);

    const int body_top = 4;
    const int body_rows = std::max(0, h - body_top - 2);
    Frame& f = top();
    if (f.selected < f.top) f.top = f.selected;
    if (body_rows > 0 && f.selected >= f.top + body_rows) f.top = f.selected - body_rows + 1;
    for (int i = 0; i < body_rows && f.top + i < static_cast<int>(rows.size()); ++i) {
      const Row& r = *rows[f.top + i];
      attr_t attr = ToneAttr(r.tone);
      if (f.top + i == f.selected) attr |= A_REVERSE;
      PutLine(body_top + i, render(r.cells), attr);
    }
    if (rows.empty() && body_rows > 0) {
      PutLine(body_top,
              top().filter.empty() ? "  (nothing)" : "  (no row matches /" + top().filter + ")",
              A_DIM);
    }

    // Message line: an action's outcome, else the view's note.
    std::string msg = message_;
    attr_t msg_attr = ToneAttr(message_tone_);
    if (running_) {
      msg = "running: " + running_what_ + " ...";
      msg_attr = ToneAttr(Tone::kWarn);
    }
    if (msg.empty()) {
      msg = table.note;
      msg_attr = A_DIM;
    }
    PutLine(h - 2, " " + msg, msg_attr);

    // Bottom line: the input being typed, a confirmation, or the keys.
    std::string bottom;
    attr_t bottom_attr = A_NORMAL;
    switch (mode_) {
      case Mode::kCommand:
        bottom = ":" + input_;
        break;
      case Mode::kFilter:
        bottom = "/" + input_;
        break;
      case Mode::kReplicas:
        bottom =
            "replicas for " + pending_.ref.target + "/" + pending_.ref.deployment + ": " + input_;
        break;
      case Mode::kConfirm:
        bottom = ConfirmText() + " [y/N]";
        bottom_attr = ToneAttr(Tone::kWarn) | A_BOLD;
        break;
      default:
        bottom = Hints(rows);
        bottom_attr = A_DIM;
    }
    PutLine(h - 1, bottom, bottom_attr);
    if (mode_ == Mode::kHelp) DrawHelp(h, w);
    if (mode_ == Mode::kCommand || mode_ == Mode::kFilter || mode_ == Mode::kReplicas) {
      curs_set(1);
      move(h - 1, std::min(w - 1, static_cast<int>(bottom.size())));
    } else {
      curs_set(0);
    }
    wnoutrefresh(stdscr);
    doupdate();
  }

  std::string Hints(const std::vector<const Row*>& rows) {
    std::string s = " :cmd /filter enter:open esc:back ?:keys";
    const Row* r = Selected(rows);
    if (actions_ != nullptr && r != nullptr && !r->deployment.empty()) {
      s += "  s:scale r:rollback v:validate";
    }
    return s;
  }

  void DrawHelp(int h, int w) {
    static const std::vector<std::string> lines = {
        "Keys",
        "",
        ":fleet :deploy :alerts   switch view",
        ":audit :cost :quit       (also :q, Ctrl-C)",
        "/text                    filter rows (Esc clears)",
        "j k  Up Down             move",
        "g G  PgUp PgDn           first, last, page",
        "Enter                    open the selected row",
        "Esc                      back",
        "s  r  v                  scale, rollback, re-run",
        "                         validation (deployments)",
        "?                        this help; any key closes",
    };
    const int bw = std::min(w - 2, 58);
    const int bh = std::min(h - 2, static_cast<int>(lines.size()) + 2);
    const int y0 = std::max(0, (h - bh) / 2), x0 = std::max(0, (w - bw) / 2);
    for (int i = 0; i < bh; ++i) {
      std::string text;
      if (i == 0 || i == bh - 1) {
        text = "+" + std::string(std::max(0, bw - 2), '-') + "+";
      } else {
        const std::string& l = i - 1 < static_cast<int>(lines.size()) ? lines[i - 1] : "";
        text = "| " + FitText(l, std::max(0, bw - 4)) + " |";
      }
      Put(y0 + i, x0, text, A_REVERSE);
    }
    if (options_.readonly) Put(y0 + bh - 1, x0 + 2, " read-only: no actions ", A_REVERSE | A_BOLD);
  }

  const Row* Selected(const std::vector<const Row*>& rows) {
    const int s = top().selected;
    return s >= 0 && s < static_cast<int>(rows.size()) ? rows[s] : nullptr;
  }

  void ClampSelection(const std::vector<const Row*>& rows) {
    Frame& f = top();
    // Follow the selected row when rows move under it.
    if (!f.selected_key.empty()) {
      for (size_t i = 0; i < rows.size(); ++i) {
        if (RowKey(*rows[i]) == f.selected_key) {
          f.selected = static_cast<int>(i);
          break;
        }
      }
    }
    if (f.selected >= static_cast<int>(rows.size())) f.selected = static_cast<int>(rows.size()) - 1;
    if (f.selected < 0) f.selected = 0;
    f.selected_key = rows.empty() ? "" : RowKey(*rows[f.selected]);
  }

  void Move(int delta) {
    const ViewTable table = CurrentTable();
    const auto rows = FilterRows(table, top().filter);
    Frame& f = top();
    f.selected = std::clamp(f.selected + delta, 0, std::max(0, static_cast<int>(rows.size()) - 1));
    f.selected_key = rows.empty() ? "" : RowKey(*rows[f.selected]);
  }

  void SetMessage(std::string m, Tone tone) {
    message_ = std::move(m);
    message_tone_ = tone;
  }

  void HandleKey(int ch) {
    if (ch == KEY_RESIZE) return;  // curses has resized stdscr; the next Draw fits it
    if (ch == kCtrlC) {
      quit_ = true;
      return;
    }
    switch (mode_) {
      case Mode::kHelp:
        mode_ = Mode::kNormal;
        return;
      case Mode::kCommand:
      case Mode::kFilter:
      case Mode::kReplicas:
        HandleInputKey(ch);
        return;
      case Mode::kConfirm:
        mode_ = Mode::kNormal;
        if (ch == 'y' || ch == 'Y') {
          StartAction(pending_);
        } else {
          SetMessage(std::string(ActionName(pending_.kind)) + " cancelled", Tone::kDim);
        }
        return;
      case Mode::kNormal:
        break;
    }
    const int page = std::max(1, LINES - 6);
    switch (ch) {
      case ':':
        mode_ = Mode::kCommand;
        input_.clear();
        return;
      case '/':
        mode_ = Mode::kFilter;
        saved_filter_ = top().filter;  // Esc while typing puts it back
        input_.clear();
        return;
      case '?':
        mode_ = Mode::kHelp;
        return;
      case 'j':
      case KEY_DOWN:
        Move(1);
        return;
      case 'k':
      case KEY_UP:
        Move(-1);
        return;
      case 'g':
      case KEY_HOME:
        Move(-1 << 20);
        return;
      case 'G':
      case KEY_END:
        Move(1 << 20);
        return;
      case KEY_NPAGE:
      case kCtrlF:
        Move(page);
        return;
      case KEY_PPAGE:
      case kCtrlB:
        Move(-page);
        return;
      case '\n':
      case '\r':
      case KEY_ENTER:
        Drill();
        return;
      case kEsc:
        Back();
        return;
      case 's':
      case 'r':
      case 'v':
        AskAction(ch == 's'   ? ActionKind::kScale
                  : ch == 'r' ? ActionKind::kRollback
                              : ActionKind::kRevalidate);
        return;
      default:
        return;
    }
  }

  void HandleInputKey(int ch) {
    if (ch == kEsc) {
      if (mode_ == Mode::kFilter) top().filter = saved_filter_;
      mode_ = Mode::kNormal;
      return;
    }
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
      const Mode m = mode_;
      mode_ = Mode::kNormal;
      if (m == Mode::kCommand) RunCommand(input_);
      if (m == Mode::kFilter) top().filter = input_;
      if (m == Mode::kReplicas) {
        char* end = nullptr;
        const long n = std::strtol(input_.c_str(), &end, 10);
        if (input_.empty() || end == nullptr || *end != '\0' || n < 0 || n > 1000) {
          SetMessage("replicas: '" + input_ + "' is not a number from 0 to 1000", Tone::kBad);
          return;
        }
        pending_.replicas = static_cast<int>(n);
        mode_ = Mode::kConfirm;
      }
      return;
    }
    if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
      if (!input_.empty()) input_.pop_back();
    } else if (ch >= 32 && ch < 127) {
      input_ += static_cast<char>(ch);
    } else {
      return;
    }
    if (mode_ == Mode::kFilter) {
      top().filter = input_;  // filter as you type
      top().selected = 0;
      top().selected_key.clear();
    }
  }

  void RunCommand(std::string cmd) {
    while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
    while (!cmd.empty() && cmd.front() == ' ') cmd.erase(cmd.begin());
    if (cmd == "q" || cmd == "quit" || cmd == "q!" || cmd == "exit") {
      quit_ = true;
      return;
    }
    if (cmd == "help" || cmd == "?") {
      mode_ = Mode::kHelp;
      return;
    }
    if (cmd.empty()) return;
    if (auto v = RootView(cmd)) {
      stack_.clear();
      Frame f;
      f.view = *v;
      stack_.push_back(f);
      SetMessage("", Tone::kNormal);
      return;
    }
    SetMessage("unknown command :" + cmd + " (try :fleet :deploy :alerts :audit :cost :quit)",
               Tone::kBad);
  }

  void Drill() {
    const ViewTable table = CurrentTable();
    const auto rows = FilterRows(table, top().filter);
    const Row* r = Selected(rows);
    if (r == nullptr || !r->drillable) return;
    Frame f;
    f.view = r->drill;
    f.context = r->drill_context;
    stack_.push_back(f);
  }

  void Back() {
    if (!top().filter.empty()) {
      top().filter.clear();
      return;
    }
    if (stack_.size() > 1) stack_.pop_back();
    SetMessage("", Tone::kNormal);
  }

  void AskAction(ActionKind kind) {
    if (actions_ == nullptr) return;  // read-only: actions are not offered at all
    const ViewTable table = CurrentTable();
    const auto rows = FilterRows(table, top().filter);
    const Row* r = Selected(rows);
    if (r == nullptr || r->deployment.empty()) {
      SetMessage(std::string(ActionName(kind)) + ": select a deployment first", Tone::kDim);
      return;
    }
    if (running_) {
      SetMessage("an action is still running: " + running_what_, Tone::kWarn);
      return;
    }
    PendingAction p;
    p.kind = kind;
    p.ref.target = r->target;
    p.ref.deployment = r->deployment;
    p.ref.replicas_desired = r->replicas_desired;
    const ActionAvailability av = actions_->Check(kind, p.ref);
    if (!av.available) {
      SetMessage(std::string(ActionName(kind)) + " unavailable: " + av.reason, Tone::kWarn);
      return;
    }
    pending_ = p;
    if (kind == ActionKind::kScale) {
      mode_ = Mode::kReplicas;
      input_ = std::to_string(p.ref.replicas_desired);
    } else {
      mode_ = Mode::kConfirm;
    }
  }

  std::string ConfirmText() const {
    const std::string what = pending_.ref.target + "/" + pending_.ref.deployment;
    switch (pending_.kind) {
      case ActionKind::kScale:
        return "Scale " + what + " from " + std::to_string(pending_.ref.replicas_desired) + " to " +
               std::to_string(pending_.replicas) + " replicas?";
      case ActionKind::kRollback:
        return "Roll back " + pending_.ref.deployment +
               " to what it ran before its latest push (every target of that push)?";
      case ActionKind::kRevalidate:
        return "Re-run the validation prompts of " + what + " on the target?";
    }
    return "";
  }

  void StartAction(const PendingAction& p) {
    if (worker_.joinable()) worker_.join();
    running_ = true;
    running_what_ = std::string(ActionName(p.kind)) + " " + p.ref.target + "/" + p.ref.deployment;
    ConsoleActions* actions = actions_;
    worker_ = std::thread([this, actions, p] {
      Result<std::string> r = actions->Run(p.kind, p.ref, p.replicas);
      std::lock_guard<std::mutex> l(result_mu_);
      result_ = std::move(r);
    });
  }

  void CollectActionResult() {
    if (!running_) return;
    std::optional<Result<std::string>> r;
    {
      std::lock_guard<std::mutex> l(result_mu_);
      if (!result_) return;
      r = std::move(result_);
      result_.reset();
    }
    running_ = false;
    if (worker_.joinable()) worker_.join();
    if (r->ok()) {
      SetMessage(running_what_ + ": " + r->value(), Tone::kGood);
    } else {
      SetMessage(running_what_ + " failed: " + r->status().message(), Tone::kBad);
    }
    poller_.Poke();
  }

  TerminalUiOptions options_;
  SnapshotPoller& poller_;
  ConsoleActions* actions_;
  std::shared_ptr<const ConsoleSnapshot> snap_;
  std::vector<Frame> stack_;
  Mode mode_ = Mode::kNormal;
  std::string input_;
  std::string saved_filter_;
  std::string message_;
  Tone message_tone_ = Tone::kNormal;
  bool colour_ = false;
  bool quit_ = false;
  PendingAction pending_;
  bool running_ = false;
  std::string running_what_;
  std::thread worker_;
  std::mutex result_mu_;
  std::optional<Result<std::string>> result_;  // GUARDED_BY(result_mu_)
};

}  // namespace

int RunTerminalUi(const TerminalUiOptions& options, SnapshotPoller& poller,
                  ConsoleActions* actions) {
  if (!isatty(0) || !isatty(1)) {
    std::cerr << "sextant tui: needs a terminal (stdin and stdout must be a tty)\n";
    return 1;
  }
  // Esc should act at once, not after curses' default wait for an escape sequence.
  set_escdelay(25);
  if (initscr() == nullptr) {
    std::cerr << "sextant tui: cannot initialise the terminal (TERM="
              << (std::getenv("TERM") ? std::getenv("TERM") : "") << ")\n";
    return 1;
  }
  g_quit_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = OnQuitSignal;
  struct sigaction old_term {
  }, old_hup{};
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  raw();  // Ctrl-C arrives as a key, so the terminal is always restored
  noecho();
  keypad(stdscr, TRUE);
  nonl();
  curs_set(0);
  wtimeout(stdscr, static_cast<int>(options.key_wait.count()));
  int rc = 0;
  {
    TerminalUi ui(options, poller, actions);
    ui.SetUpColours();
    rc = ui.Loop();
  }
  endwin();
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  return rc;
}

}  // namespace sextant::tui
