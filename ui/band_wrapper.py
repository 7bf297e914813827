"""The Processing widget wrapper of the extraction algorithms' BANDS parameter.

The algorithm dialog gets the full band-selection widget, following the INPUT layer and MODEL parameters.
A batch row or a modeler child cannot show a preview for every row or know the layer at design time, so
there the wrapper degrades as QGIS's own wrappers do (processing.algs.gdal.ui.RasterOptionsWidget): a text
entry of comma-separated band numbers in batch (checked against the row's layer and model), an editable
combo box of presets and the model's band/number inputs in the modeler. Every mode passes on what
QgsProcessingParameterBand(allowMultiple=True) takes: a list of band numbers, empty for automatic.

Attached by name from processing_provider/extraction.py, so that qgis_process never imports it.
"""


from processing.gui.wrappers import DIALOG_BATCH, DIALOG_MODELER, DIALOG_STANDARD, WidgetWrapper
from qgis.core import (
    QgsMapLayer,
    QgsProcessingModelChildParameterSource,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
)
from qgis.PyQt.QtCore import QRegularExpression
from qgis.PyQt.QtGui import QRegularExpressionValidator
from qgis.PyQt.QtWidgets import QComboBox, QLineEdit

from ..core.extract import band_preview, raster
from ..core.fetch.model_store import ModelError, NotInstalledError
from ..core.model_registry import RegistryError
from ..qgis_adapter.layers import NotARasterFileError
from ..qgis_adapter.models import model_store
from ..qgis_adapter.web_sources import raster_source
from .band_selection import ERROR_STYLE, BandSelectionWidget

# 1-based band numbers separated by commas, semicolons or spaces; what is typed can only ever parse
BAND_LIST_PATTERN = r"[\s,;]*([1-9][0-9]*[\s,;]*)*"


def band_list_text(value) -> str:
    """A BANDS value (list, or text as saved) as the text entry shows it: "5,3,2", "" for automatic."""
    if value is None or isinstance(value, QgsProcessingModelChildParameterSource):
        return ""
    try:
        bands = band_preview.parse_band_list(value if isinstance(value, str) else " ".join(map(str, value)))
    except (raster.BandMappingError, TypeError):
        return ""
    return ",".join(map(str, bands))


class BandsWidgetWrapper(WidgetWrapper):
    """Metadata: {'widget_wrapper': {'class': ..., 'model_parameter': 'MODEL'}}; the layer is the band
    parameter's parent layer parameter."""

    def __init__(self, param, dialog, row=0, col=0, model_parameter="MODEL", **kwargs):
        self._model_parameter = model_parameter
        self._layer_wrapper = None
        self._model_wrapper = None
        self._raster_path = self._model_path = None  # what the widget was last given
        self._context = None
        self._row_check = None  # batch: (RasterInfo, model band names) of the row, None while unknown
        super().__init__(param, dialog, row, col, **kwargs)

    # --- widgets --------------------------------------------------------------------------------------
    def createWidget(self):  # noqa: N802 - Processing API
        if self.dialogType == DIALOG_STANDARD:
            widget = BandSelectionWidget()
            widget.bandsChanged.connect(lambda _bands: self.widgetValueHasChanged.emit(self))
            return widget
        validator = QRegularExpressionValidator(QRegularExpression(BAND_LIST_PATTERN))
        if self.dialogType == DIALOG_BATCH:
            widget = QLineEdit()
            widget.setValidator(validator)
            widget.setPlaceholderText(self.tr("automatic"))
            widget.setToolTip(self.tr("Band numbers for the model's inputs, e.g. 5,3,2; empty: automatic"))
            widget.textChanged.connect(self._batch_text_changed)
            return widget
        widget = QComboBox()
        widget.setEditable(True)
        widget.setValidator(validator)
        widget.addItem(self.tr(band_preview.PRESETS_BY_KEY[band_preview.AUTOMATIC].label), "")
        for preset in band_preview.PRESETS:
            if preset.bands is not None:
                widget.addItem(self.tr(preset.label), ",".join(map(str, preset.bands)))
        sources = self.dialog.getAvailableValuesOfType(
            [QgsProcessingParameterBand, QgsProcessingParameterNumber], [QgsProcessingOutputNumber])
        for source in sources:
            widget.addItem(self.dialog.resolveValueDescription(source), source)
        widget.setToolTip(self.tr("A preset, a band or number input of the model, or band numbers such as 5,3,2"))
        widget.currentTextChanged.connect(lambda _text: self.widgetValueHasChanged.emit(self))
        return widget

    def setValue(self, value):  # noqa: N802 - Processing API
        if self.dialogType == DIALOG_STANDARD:
            self.widget.set_bands(band_preview.parse_band_list(band_list_text(value)))
        elif self.dialogType == DIALOG_BATCH:
            self.widget.setText(band_list_text(value))
        else:
            index = -1
            if isinstance(value, QgsProcessingModelChildParameterSource):
                sources = [self.widget.itemData(i) for i in range(self.widget.count())]
                index = next((i for i, s in enumerate(sources) if s == value), -1)
            else:
                index = self.widget.findData(band_list_text(value))
            if index >= 0:
                self.widget.setCurrentIndex(index)
            else:
                self.widget.setEditText(band_list_text(value))

    def value(self):
        if self.dialogType == DIALOG_STANDARD:
            return self.widget.bands() or []
        if self.dialogType == DIALOG_BATCH:
            return self._parsed(self.widget.text())
        index = self.widget.findText(self.widget.currentText())
        data = self.widget.itemData(index) if index >= 0 else None
        if isinstance(data, QgsProcessingModelChildParameterSource):
            return data
        return self._parsed(data if isinstance(data, str) else self.widget.currentText())

    @staticmethod
    def _parsed(text) -> list:
        try:
            return list(band_preview.parse_band_list(text))
        except raster.BandMappingError:  # the validator lets no such text in; a stray one means automatic
            return []

    # --- following the layer and the model ------------------------------------------------------------
    def postInitialize(self, wrappers):  # noqa: N802 - Processing API
        layer_name = self.parameterDefinition().parentLayerParameterName()
        for wrapper in wrappers:
            name = wrapper.parameterDefinition().name()
            if name == layer_name:
                self._layer_wrapper = wrapper
            elif name == self._model_parameter:
                self._model_wrapper = wrapper
        if self.dialogType == DIALOG_MODELER:
            return  # the layer and model are model inputs or other algorithms' results: unknown here
        for wrapper in (self._layer_wrapper, self._model_wrapper):
            if wrapper is not None:
                wrapper.widgetValueHasChanged.connect(self._follow)
        self._follow()

    def _follow(self, *_changed):
        raster_path = self._layer_path()
        model_path, problem = self._resolved_model()
        if self.dialogType == DIALOG_STANDARD:
            if raster_path != self._raster_path:
                self.widget.set_raster(raster_path)
            if (model_path, problem) != self._model_path:
                self.widget.set_model(model_path, problem)
        else:
            self._row_check = self._row_inputs(raster_path, model_path)
            self._batch_text_changed()
        self._raster_path, self._model_path = raster_path, (model_path, problem)

    def _layer_path(self):
        if self._layer_wrapper is None:
            return None
        value = self._layer_wrapper.parameterValue()
        layer = value if isinstance(value, QgsMapLayer) else None
        if layer is None and isinstance(value, str) and value:
            if self._context is None:
                from processing.tools import dataobjects

                self._context = dataobjects.createContext()
            layer = QgsProcessingUtils.mapLayerFromString(value, self._context)
        try:  # a web layer's GDAL name (XYZ, WMTS, WMS, remote GeoTIFF): its bands show as a file's
            return raster_source(layer).name if layer is not None else None
        except NotARasterFileError:
            return None

    def _resolved_model(self) -> tuple:
        """The model file and "", or None and why there is none."""
        if self._model_wrapper is None:
            return None, ""
        value = self._model_wrapper.parameterValue()
        default = self._model_wrapper.parameterDefinition().defaultValue() or ""
        try:
            return str(model_store().resolve((value if isinstance(value, str) else "") or default,
                                             download=False)), ""
        except NotInstalledError:
            return None, ""  # downloaded when the algorithm runs, never from the dialog: the usual RGB inputs meanwhile
        except (ModelError, RegistryError) as error:
            return None, str(error)

    @staticmethod
    def _row_inputs(raster_path, model_path):
        if not raster_path:
            return None
        try:
            info = raster.describe(raster_path)
            bands = band_preview.model_inputs(model_path).bands if model_path else band_preview.DEFAULT_MODEL_BANDS
        except (raster.RasterError, band_preview.PreviewError):
            return None
        return info, bands

    def _batch_text_changed(self, *_text):
        """Marks a batch row's bands that its layer and model cannot take, saying why in the tooltip."""
        check = None
        if self._row_check is not None:
            info, model_bands = self._row_check
            choice = band_preview.choice_for(self.value(), info, model_bands)
            check = band_preview.check_choice(choice, info, model_bands)
        refused = check is not None and not check.valid
        self.widget.setStyleSheet(ERROR_STYLE if refused else "")
        if refused:
            self.widget.setToolTip(check.error)
        elif check is not None:
            self.widget.setToolTip(", ".join(f"{name} ← {band}" for name, band in zip(self._row_check[1], check.bands)))
        self.widgetValueHasChanged.emit(self)
