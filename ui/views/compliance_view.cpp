#include <QFile>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QPageSize>
#include <QPainter>
#include <QPdfWriter>
#include <QPushButton>
#include <QSplitter>
#include <QTableView>
#include <QTextDocument>
#include <QTextEdit>
#include <QVBoxLayout>
#include <nlohmann/json.hpp>

#include "app/console/compliance/report_formats.h"
#include "engine/base/build_info.h"
#include "ui/views/views.h"

namespace sextant::ui {

namespace {
QString Q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

ComplianceView::ComplianceView(ViewContext* ctx, QWidget* parent)
    : ConsoleView("complianceView", ctx, parent) {
  auto* layout = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout();
  summary_ = new QLabel(this);
  summary_->setObjectName("complianceSummary");
  auto* pdf = new QPushButton("Export PDF…", this);
  pdf->setObjectName("exportPdf");
  pdf->setShortcut(QKeySequence("Ctrl+Shift+E"));
  pdf->setToolTip("A report for a security reviewer (Ctrl+Shift+E)");
  auto* json = new QPushButton("Export JSON…", this);
  json->setObjectName("exportJson");
  auto* sarif = new QPushButton("Export SARIF…", this);
  sarif->setObjectName("exportSarif");
  bar->addWidget(summary_, 1);
  bar->addWidget(pdf);
  bar->addWidget(json);
  bar->addWidget(sarif);
  layout->addLayout(bar);
  auto* split = new QSplitter(Qt::Vertical, this);
  model_ = new ComplianceMatrixModel(this);
  matrix_ = new QTableView(split);
  matrix_->setObjectName("complianceMatrix");
  matrix_->setModel(model_);
  matrix_->setSelectionMode(QAbstractItemView::SingleSelection);
  matrix_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  matrix_->verticalHeader()->hide();
  evidence_ = new QTextEdit(split);
  evidence_->setObjectName("complianceEvidence");
  evidence_->setReadOnly(true);
  evidence_->setPlaceholderText("Select a cell to see the rule, the verdict and its evidence.");
  split->addWidget(matrix_);
  split->addWidget(evidence_);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  layout->addWidget(split, 1);

  connect(matrix_->selectionModel(), &QItemSelectionModel::currentChanged, this,
          [this](const QModelIndex&, const QModelIndex&) { ShowEvidence(); });
  connect(model_, &QAbstractItemModel::dataChanged, this, [this] { ShowEvidence(); });
  auto status_text = [this](const Status& s, const QString& path) {
    summary_->setText(s.ok() ? "wrote " + path : Q(s.message()));
  };
  connect(pdf, &QPushButton::clicked, this, [this, status_text] {
    const QString p =
        ctx_->save_file("Export compliance PDF", "sextant-compliance.pdf", "PDF (*.pdf)");
    if (!p.isEmpty()) status_text(ExportPdf(p), p);
  });
  connect(json, &QPushButton::clicked, this, [this, status_text] {
    const QString p =
        ctx_->save_file("Export compliance JSON", "sextant-compliance.json", "JSON (*.json)");
    if (!p.isEmpty()) status_text(ExportJson(p, false), p);
  });
  connect(sarif, &QPushButton::clicked, this, [this, status_text] {
    const QString p =
        ctx_->save_file("Export SARIF", "sextant-compliance.sarif", "SARIF (*.sarif *.json)");
    if (!p.isEmpty()) status_text(ExportJson(p, true), p);
  });
}

void ComplianceView::SetSnapshot(const std::shared_ptr<const ConsoleSnapshot>& snapshot) {
  model_->SetSnapshot(snapshot);
  if (!snapshot) return;
  int pass = 0, fail = 0, warn = 0, unknown = 0;
  for (const auto& f : snapshot->findings) {
    switch (f.verdict) {
      case console::Verdict::kPass:
        ++pass;
        break;
      case console::Verdict::kFail:
        ++fail;
        break;
      case console::Verdict::kWarn:
        ++warn;
        break;
      case console::Verdict::kUnknown:
        ++unknown;
        break;
    }
  }
  summary_->setText(QString("%1 packs · %2 targets · %3 pass · %4 fail · %5 warn · %6 unknown")
                        .arg(snapshot->packs.size())
                        .arg(snapshot->targets.size())
                        .arg(pass)
                        .arg(fail)
                        .arg(warn)
                        .arg(unknown));
}

void ComplianceView::ShowEvidence() {
  const console::Finding* f = model_->FindingAt(matrix_->currentIndex());
  if (f == nullptr) {
    evidence_->clear();
    return;
  }
  QString html =
      QString("<h3>%1 · %2</h3><p><b>%3</b> on <b>%4</b> — %5</p><p>%6</p>")
          .arg(Q(f->pack).toHtmlEscaped(), Q(f->rule_id).toHtmlEscaped(),
               Q(std::string(console::VerdictName(f->verdict))), Q(f->target).toHtmlEscaped(),
               Q(f->rule_title).toHtmlEscaped(), Q(f->message).toHtmlEscaped());
  QStringList controls;
  for (const auto& c : f->controls) controls << Q(c);
  html += QString("<p>severity %1 · standard %2 · controls %3</p>")
              .arg(Q(std::string(console::SeverityName(f->severity))), Q(f->standard),
                   controls.join(", ").toHtmlEscaped());
  html +=
      "<table border=1 cellspacing=0 cellpadding=3><tr><th>evidence</th><th>value</th>"
      "<th>observed</th></tr>";
  for (const auto& e : f->evidence) {
    html +=
        QString("<tr><td>%1</td><td>%2</td><td>%3</td></tr>")
            .arg(Q(e.key).toHtmlEscaped(), Q(e.value).toHtmlEscaped(), FormatTimeMs(e.observed_at));
  }
  html += "</table>";
  if (f->evidence.empty()) html += "<p>No evidence: the agent has not reported these facts.</p>";
  evidence_->setHtml(html);
}

Status ComplianceView::ExportJson(const QString& path, bool sarif) const {
  const auto& snap = model_->snapshot();
  if (!snap) return Status::FailedPrecondition("no compliance data yet");
  nlohmann::json j = sarif ? console::FindingsToSarif(snap->packs, snap->findings,
                                                      GetBuildInfo().version, snap->taken_at)
                           : console::FindingsToJson(snap->findings);
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
    return Status::Internal("cannot write " + path.toStdString() + ": " +
                            f.errorString().toStdString());
  }
  const QByteArray bytes = QByteArray::fromStdString(j.dump(2) + "\n");
  if (f.write(bytes) != bytes.size())
    return Status::Internal("short write to " + path.toStdString());
  return Status();
}

Status ComplianceView::ExportPdf(const QString& path) const {
  const auto& snap = model_->snapshot();
  if (!snap) return Status::FailedPrecondition("no compliance data yet");
  // The report is an HTML document laid out by QTextDocument onto A4 pages.
  QString html = QString("<h1>Sextant compliance report</h1><p>Generated %1 by %2. %3</p>")
                     .arg(FormatTimeMs(snap->taken_at),
                          Q(GetBuildInfo().VersionLine("sextant")).toHtmlEscaped(),
                          summary_->text().toHtmlEscaped());
  for (const auto& p : snap->packs) {
    html += QString("<h2>%1 — %2 (%3, version %4)</h2>")
                .arg(Q(p.name).toHtmlEscaped(), Q(p.title).toHtmlEscaped(),
                     Q(p.standard).toHtmlEscaped(), Q(p.version).toHtmlEscaped());
    html +=
        "<table border=1 cellspacing=0 cellpadding=2 width=100%><tr><th>target</th>"
        "<th>rule</th><th>severity</th><th>verdict</th><th>message</th><th>evidence</th></tr>";
    for (const auto& f : snap->findings) {
      if (f.pack != p.name) continue;
      QStringList ev;
      for (const auto& e : f.evidence) ev << Q(e.key + "=" + e.value).toHtmlEscaped();
      const QString verdict = Q(std::string(console::VerdictName(f.verdict)));
      html +=
          QString(
              "<tr><td>%1</td><td>%2 %3</td><td>%4</td><td bgcolor=\"%5\">%6</td>"
              "<td>%7</td><td>%8</td></tr>")
              .arg(Q(f.target).toHtmlEscaped(), Q(f.rule_id).toHtmlEscaped(),
                   Q(f.rule_title).toHtmlEscaped(),
                   Q(std::string(console::SeverityName(f.severity))), StateColor(verdict).name(),
                   verdict, Q(f.message).toHtmlEscaped(), ev.join("<br>"));
    }
    html += "</table>";
  }
  QPdfWriter writer(path);
  writer.setPageSize(QPageSize(QPageSize::A4));
  writer.setResolution(150);
  writer.setTitle("Sextant compliance report");
  writer.setCreator(Q(GetBuildInfo().VersionLine("sextant")));
  QTextDocument doc;
  doc.setHtml(html);
  doc.setPageSize(QSizeF(writer.width(), writer.height()));
  QFont font = doc.defaultFont();
  font.setPointSizeF(7);
  doc.setDefaultFont(font);
  doc.print(&writer);
  QFile check(path);
  if (!check.exists() || check.size() == 0) {
    return Status::Internal("the PDF writer produced nothing at " + path.toStdString());
  }
  return Status();
}

}  // namespace sextant::ui
