"""The band-selection widget: shows a raster's bands and a model's inputs, edits the mapping between them.

Thin by design: what it shows and whether a mapping is accepted come from core.extract.band_preview; the widget
gathers the mapper's choice (a core.extract.band_preview.BandChoice) and displays the answers.
"""

from pathlib import Path

from qgis.PyQt import uic
from qgis.PyQt.QtCore import QSize, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from qgis.PyQt.QtWidgets import QComboBox, QHeaderView, QTableWidgetItem, QWidget

from ..core.extract import band_preview, raster
from ..core.extract.band_preview import AUTOMATIC, CUSTOM, BandChoice

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("band_selection.ui")))

SPARKLINE_SIZE = QSize(64, 18)
ERROR_STYLE = "color: #b3261e;"
COLUMN_HISTOGRAM = 6


def _number(value) -> str:
    return "–" if value is None else f"{value:.6g}"


def sparkline(heights, size: QSize = SPARKLINE_SIZE, color: QColor = None) -> QPixmap:
    """A histogram as a small bar chart (heights 0..1)."""
    pixmap = QPixmap(size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color or QColor("#4a6fa5"))
    width = size.width() / max(1, len(heights))
    for i, height in enumerate(heights):
        bar = max(1, round(height * size.height())) if height > 0 else 0
        painter.drawRect(round(i * width), size.height() - bar, max(1, round(width)), bar)
    painter.end()
    return pixmap


class BandSelectionWidget(QWidget, FORM_CLASS):
    """Which raster band feeds each model input: presets, one combo box per input, a composite thumbnail."""

    bandsChanged = pyqtSignal(object)  # noqa: N815 - Qt naming; carries bands(): a list, or None for automatic

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.bandTable.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self._preview = None
        self._raster_problem = ""
        self._model = None
        self._model_problem = ""
        self._choice = BandChoice(AUTOMATIC)
        self._combos = []
        self._updating = False
        self._last_emitted = (None, False)
        self.presetCombo.currentIndexChanged.connect(self._preset_chosen)
        self._rebuild()

    # --- what callers use -------------------------------------------------------------------------
    def set_raster(self, path):
        """Show the raster at ``path`` (None: no raster)."""
        self._preview, self._raster_problem = None, ""
        if path:
            try:
                self._preview = band_preview.preview(path)
            except raster.RasterError as error:
                self._raster_problem = str(error)
        self._rebuild(raster_changed=True)

    def set_model(self, path, problem: str = ""):
        """Map onto the inputs of the model at ``path``; None with ``problem`` says why there is no model."""
        self._model, self._model_problem = None, problem
        if path:
            try:
                self._model = band_preview.model_inputs(path)
            except band_preview.PreviewError as error:
                self._model_problem = str(error)
        self._rebuild()

    def bands(self):
        """The BANDS value: a raster band per model input, or None for automatic."""
        value = self._check().value if self._preview else band_preview.choice_value(self._choice, self.model_bands())
        return None if value is None else list(value)

    def set_bands(self, bands):
        """Choose ``bands`` (a list of band numbers; empty or None: automatic)."""
        info = self._preview.info if self._preview else None
        self._choice = band_preview.choice_for(bands, info, self.model_bands())
        self._show_choice()

    def choose_preset(self, key: str):
        """Choose one of core.extract.band_preview.PRESETS by key, even one the raster does not fit (then refused)."""
        self._choice = BandChoice(key)
        self._show_choice()

    def is_valid(self) -> bool:
        return self._preview is not None and not self._model_problem and self._check().valid

    def message(self) -> str:
        return self.messageLabel.text()

    def model_bands(self) -> tuple:
        return self._model.bands if self._model else band_preview.DEFAULT_MODEL_BANDS

    # --- display ----------------------------------------------------------------------------------
    def _check(self):
        return band_preview.check_choice(self._choice, self._preview.info, self.model_bands())

    def _rebuild(self, raster_changed=False):
        self._updating = True
        try:
            if raster_changed:
                self._fill_table()
                if self._preview is not None and self._choice.preset == CUSTOM:
                    # a mapping set before the raster was known may be one of its presets
                    self._choice = band_preview.choice_for(self._choice.bands, self._preview.info, self.model_bands())
            self._fill_model()
            self._fill_presets()
            self._fill_inputs()
        finally:
            self._updating = False
        self._show_choice()

    def _fill_table(self):
        table = self.bandTable
        table.setRowCount(0)
        if self._preview is None:
            self.rasterLabel.setText(self._raster_problem or self.tr("No raster layer chosen."))
            self.rasterLabel.setStyleSheet(ERROR_STYLE if self._raster_problem else "")
            return
        info = self._preview.info
        self.rasterLabel.setStyleSheet("")
        self.rasterLabel.setText(self.tr("{name}: {width} × {height} px, {count} band(s)").format(
            name=Path(info.path).name, width=info.width, height=info.height, count=info.count))
        table.setRowCount(len(self._preview.bands))
        for row, band in enumerate(self._preview.bands):
            cells = [str(band.index), band.description, band.colour, band.dtype, _number(band.minimum),
                     _number(band.maximum), ""]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in (0, 4, 5):
                    item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                table.setItem(row, column, item)
            table.item(row, COLUMN_HISTOGRAM).setData(Qt.ItemDataRole.DecorationRole, sparkline(band.histogram))
        table.resizeColumnsToContents()

    def _fill_model(self):
        if self._model is not None:
            self.modelLabel.setStyleSheet("")
            self.modelLabel.setText(self._model.summary)
        elif self._model_problem:
            self.modelLabel.setStyleSheet(ERROR_STYLE)
            self.modelLabel.setText(self._model_problem)
        else:
            self.modelLabel.setStyleSheet("")
            self.modelLabel.setText(self.tr("No model: assuming the inputs {bands}.").format(
                bands=", ".join(band_preview.DEFAULT_MODEL_BANDS)))

    def _fill_presets(self):
        combo = self.presetCombo
        combo.clear()
        options = band_preview.preset_options(self._preview.info, self.model_bands()) if self._preview else ()
        reasons = {option.preset.key: option.reason for option in options}
        for preset in band_preview.PRESETS:
            combo.addItem(self.tr(preset.label), preset.key)
            reason = reasons.get(preset.key, "")
            if reason:
                index = combo.count() - 1
                combo.model().item(index).setEnabled(False)
                combo.setItemData(index, self.tr("Not available: {reason}").format(reason=reason),
                                  Qt.ItemDataRole.ToolTipRole)
        combo.addItem(self.tr("Custom mapping"), CUSTOM)
        combo.setEnabled(self._preview is not None)

    def _fill_inputs(self):
        form = self.inputsForm
        while form.rowCount():
            form.removeRow(0)
        self._combos = []
        bands = self._preview.bands if self._preview else ()
        for name in self.model_bands():
            combo = QComboBox()
            for band in bands:
                combo.addItem(band.label, band.index)
            combo.setEnabled(bool(bands))
            combo.currentIndexChanged.connect(self._band_chosen)
            form.addRow(self.tr("{name} ←").format(name=name), combo)
            self._combos.append(combo)

    def _show_choice(self):
        """Puts the current choice in the combo boxes, the message and the thumbnail."""
        self._updating = True
        try:
            self.presetCombo.setCurrentIndex(self.presetCombo.findData(self._choice.preset))
            check = self._check() if self._preview else None
            shown = check.bands if check else (band_preview.choice_value(self._choice, self.model_bands()) or ())
            for i, combo in enumerate(self._combos):
                combo.setCurrentIndex(combo.findData(shown[i]) if i < len(shown) else -1)
        finally:
            self._updating = False
        self._show_message(check)
        self._show_thumbnail(check)
        self._mark_used_bands(check)
        state = (self.bands(), self.is_valid())
        if state != self._last_emitted:
            self._last_emitted = state
            self.bandsChanged.emit(state[0])

    def _show_message(self, check):
        if check is None:
            text, error = self._raster_problem or self.tr("Choose a raster layer to map its bands."), True
        elif self._model_problem:
            text, error = self._model_problem, True
        elif not check.valid:
            text, error = check.error, True
        else:
            mapping = ", ".join(f"{name} ← {band}" for name, band in zip(self.model_bands(), check.bands))
            prefix = self.tr("Automatic: ") if check.value is None else ""
            text, error = prefix + mapping, False
        self.messageLabel.setText(text)
        self.messageLabel.setStyleSheet(ERROR_STYLE if error else "")

    def _show_thumbnail(self, check):
        if check is None or not check.valid:
            self.thumbnailLabel.setText(self.tr("No preview"))
            return
        normalisation = self._model.normalisation if self._model else None
        rgba = band_preview.composite(self._preview, check.bands, self.model_bands(), normalisation)
        height, width = rgba.shape[:2]
        image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
        pixmap = QPixmap.fromImage(image).scaled(
            self.thumbnailLabel.minimumSize(), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        self.thumbnailLabel.setPixmap(pixmap)

    def _mark_used_bands(self, check):
        used = set(check.bands) if check is not None else set()
        for row in range(self.bandTable.rowCount()):
            item = self.bandTable.item(row, 0)
            font = QFont(item.font())
            font.setBold(row + 1 in used)
            item.setFont(font)

    # --- what the mapper does -----------------------------------------------------------------------
    def _preset_chosen(self, index):
        if self._updating or index < 0:
            return
        key = self.presetCombo.itemData(index)
        if key == CUSTOM:
            self._choice = BandChoice(CUSTOM, tuple(self._combo_bands()))
        else:
            self._choice = BandChoice(key)
        self._show_choice()

    def _band_chosen(self, _index):
        if self._updating:
            return
        bands = self._combo_bands()
        if None in bands:
            return
        self._choice = band_preview.choice_for(bands, self._preview.info if self._preview else None,
                                               self.model_bands())
        self._show_choice()

    def _combo_bands(self) -> list:
        return [combo.currentData() for combo in self._combos]
