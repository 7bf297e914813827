"""The small base every SpaceNet algorithm shares: translation, instances, groups, dependencies, the checks every
run passes before any work (raster inputs GDAL reads; outputs that can be written and overwrite no input and no
other output; extents with an area; choices given by name or by number), and the one bridge from core's progress
contract (``report(fraction, message)``, ``is_canceled``, ``Canceled``) to the feedback.

Choices: every enum parameter of the plugin uses static strings (models and scripts store the name, which stays
right when options are added), but ``qgis_process help`` lists the options as "0: name, 1: name", and QGIS 3.22
refuses the number, or, where no check ran first (a model's step), silently takes the default instead. So a number
(an int, a string of digits, or either in a list for a multiple choice) is read as the option it numbers
(``enum_names``), a value that is neither an option nor its number is refused in one sentence that lists the
choices (``invalid_enum_value``), and algorithms read their choices with ``enum_value`` / ``enum_values``.
"""

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from ..core import dependencies, progress
from ..qgis_adapter.destinations import destination_layer, overwrites, source_layer, unusable_folder, unwritable_folder
from ..qgis_adapter.layers import unreadable_raster

PLUGIN_DIR = Path(__file__).resolve().parent.parent
ICON_PATH = PLUGIN_DIR / "icon.png"
HELP_URL = "https://github.com/spacenet-toolkit/spacenet_toolkit#algorithms"

# The parameters whose value is a layer or a file read: what an output must not overwrite.
LAYER_INPUT_TYPES = {"raster", "vector", "source", "layer", "file", "mesh", "pointcloud"}

# Group ids are stable API (models refer to them); the names are translated.
GROUPS = {
    "data": "Data",
    "extraction": "Extraction",
    "evaluation": "Evaluation",
    "models": "Models",
}


def tr(text: str, context: str = "SpaceNet") -> str:
    return QCoreApplication.translate(context, text)


class SpaceNetAlgorithm(QgsProcessingAlgorithm):
    """Subclasses set ``GROUP`` (a key of ``GROUPS``) and ``REQUIRES`` (importable module names)."""

    GROUP = "data"
    REQUIRES: tuple = ()

    def tr(self, text: str) -> str:
        return tr(text, type(self).__name__)

    def createInstance(self):  # noqa: N802 - QGIS API
        return type(self)()

    def group(self) -> str:
        return self.tr(GROUPS[self.GROUP])

    def groupId(self) -> str:  # noqa: N802 - QGIS API
        return self.GROUP

    def icon(self) -> QIcon:
        return QIcon(str(ICON_PATH))

    def helpUrl(self) -> str:  # noqa: N802 - QGIS API
        return HELP_URL

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API
        """Refuse, before any work, a choice that is neither an option nor its number, a raster input GDAL cannot
        read (QGIS would call it "not found") and an output into a folder that is not there (found only when
        writing, after the whole run, with a traceback). QGIS's own checks see the choices by name."""
        message = self.invalid_enum_value(parameters)
        if message:
            return False, message
        parameters = self.enum_names(parameters)
        message = self.unreadable_raster_input(parameters, context) or self.unusable_output(parameters, context)
        if message:
            return False, message
        return super().checkParameterValues(parameters, context)

    def static_enums(self) -> list:
        """The enum parameters whose values are their options' names."""
        return [definition for definition in self.parameterDefinitions()
                if definition.type() == QgsProcessingParameterEnum.typeName() and definition.usesStaticStrings()]

    def enum_names(self, parameters: dict) -> dict:
        """``parameters`` with every choice given by number given by name instead (a copy; the rest as it was)."""
        named = dict(parameters)
        for definition in self.static_enums():
            if definition.name() in named:
                named[definition.name()] = enum_name(definition, named[definition.name()])
        return named

    def invalid_enum_value(self, parameters: dict) -> str:
        """The first choice that is neither an option nor an option's number, said in one sentence; "" when none."""
        for definition in self.static_enums():
            wrong = invalid_choices(definition, parameters.get(definition.name()))
            if wrong:
                return self.enum_error(definition, wrong)
        return ""

    def enum_error(self, definition, wrong: list) -> str:
        choices = ", ".join(f"{number}: {option}" for number, option in enumerate(definition.options()))
        given = ", ".join(str(value) if str(value).strip().lstrip("-").isdigit() else repr(value) for value in wrong)
        verb = "is" if len(wrong) == 1 else "are"
        return self.tr(f"{definition.name()} ({definition.description()}): {given} {verb} not among the choices: "
                       f"give a name or its number ({choices}).")

    def enum_value(self, parameters, name: str, context) -> str:
        """The option chosen for the enum parameter ``name``, given by name or by number (the default when none is
        given); QgsProcessingException when the value is neither (QGIS would take the default without a word)."""
        return self._enum(parameters, name, context, multiple=False)

    def enum_values(self, parameters, name: str, context) -> list:
        """The options chosen for the multiple-choice enum parameter ``name``, each by name or by number."""
        return self._enum(parameters, name, context, multiple=True)

    def _enum(self, parameters, name, context, multiple):
        definition = self.parameterDefinition(name)
        value = parameters.get(name)
        if definition.usesStaticStrings():
            wrong = invalid_choices(definition, value)
            if wrong:
                raise QgsProcessingException(self.enum_error(definition, wrong))
            parameters = {**parameters, name: enum_name(definition, value)}
        if multiple:
            return list(self.parameterAsEnumStrings(parameters, name, context))
        return self.parameterAsEnumString(parameters, name, context)

    def unreadable_raster_input(self, parameters, context) -> str:
        """The first raster parameter whose file GDAL cannot read, said in one sentence; "" when none."""
        for definition in self.parameterDefinitions():
            if definition.type() == QgsProcessingParameterRasterLayer.typeName():
                why = unreadable_raster(parameters.get(definition.name()), context)
                if why:
                    return f"{definition.name()}: {why}"
        return ""

    def unusable_output(self, parameters, context) -> str:
        """The first output that cannot be written, said in one sentence; "" when none (see
        ``unusable_file_output`` and ``unusable_folder_output``)."""
        inputs = [(definition, source_layer(parameters.get(definition.name()), context))
                  for definition in self.parameterDefinitions() if definition.type() in LAYER_INPUT_TYPES]
        written = []  # (definition, (file, layer), whether its writer replaces the whole file) of the outputs so far
        for definition in self.destinationParameterDefinitions():
            target = destination_layer(parameters.get(definition.name()), context)
            if not target[0]:
                continue
            what = f"{definition.name()} ({definition.description()})"
            if definition.type() == QgsProcessingParameterFolderDestination.typeName():
                message = self.unusable_folder_output(Path(target[0]), what)
            else:
                message = self.unusable_file_output(definition, target, what, inputs, written)
            if message:
                return message
        return ""

    def unusable_file_output(self, definition, target: tuple, what: str, inputs: list, written: list) -> str:
        """Why the file output ``target`` (file, layer) cannot be written: its folder is not there or takes no
        file, the file is a folder, it is a raster format this provider does not write, or it would overwrite an
        input or an output in ``written`` (found after the whole run, or never: a source image replaced by
        probabilities); "" when it can, and then it joins ``written``."""
        path = target[0]
        folder = unusable_folder(path)
        if folder is not None and folder.exists():
            return self.tr(f"The folder of {what}, '{folder}', is a file: choose another place for {path}.")
        if folder is not None:
            return self.tr(f"The folder '{folder}' for {what} does not exist: create it or choose another folder.")
        if Path(path).is_dir():
            return self.tr(f"{what} names a folder, '{path}': give the name of a file in it.")
        why = unwritable_folder(path)
        if why:
            return self.tr(f"No file can be written in the folder '{Path(path).parent}' for {what} ({why}): "
                           "choose another folder.")
        is_raster = definition.type() == QgsProcessingParameterRasterDestination.typeName()
        extensions = self.provider().supportedOutputRasterLayerExtensions() if is_raster and self.provider() else []
        if extensions and Path(path).suffix.lower().lstrip(".") not in extensions:
            return self.tr(f"{what} is written as a GeoTIFF: give its file a .tif name, not '{Path(path).name}'.")
        whole_file = is_raster or not target[1]
        for other, source in inputs:
            if overwrites(target, source, whole_file):
                return self.tr(f"{what} would overwrite the input {other.name()} ({path}): choose another file.")
        for other, earlier, earlier_whole in written:
            if overwrites(target, earlier, whole_file or earlier_whole):
                return self.tr(f"{what} and {other.name()} are the same file ({path}): give each its own.")
        written.append((definition, target, whole_file))
        return ""

    def unusable_folder_output(self, folder: Path, what: str) -> str:
        """Why the folder output ``folder`` cannot be made or written (it is a file, or the place it goes takes no
        file: found when the first file was written, as a traceback or as every download failing); "" when it can."""
        if folder.exists() and not folder.is_dir():
            return self.tr(f"{what} names a file, '{folder}': give a folder.")
        existing = next((place for place in (folder, *folder.parents) if place.exists()), None)
        if existing is None or not existing.is_dir():
            return self.tr(f"{what}: '{existing}' is a file, so the folder '{folder}' cannot be made in it.")
        why = unwritable_folder(str(existing / "probe"))
        if why:
            return self.tr(f"No file can be written in '{existing}' for {what} ({why}): choose another folder.")
        return ""

    def given_extent(self, parameters, name, context, crs) -> tuple | None:
        """The extent parameter ``name`` as (xmin, ymin, xmax, ymax) in ``crs``; None when it is left empty, and
        QgsProcessingException when it has no area (a point, a line: the whole layer instead would surprise)."""
        if parameters.get(name) in (None, ""):
            return None
        rect = self.parameterAsExtent(parameters, name, context, crs)
        if rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(self.tr(
                f"{name}: the extent given ({parameters[name]}) has no area: give a rectangle with a width and a "
                "height, or leave it empty."))
        return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()

    def raster_parameter(self, parameters, name, context):
        """The raster layer of parameter ``name``; QgsProcessingException with the clearest reason when none."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            why = unreadable_raster(parameters.get(name), context)
            raise QgsProcessingException(f"{name}: {why}" if why else self.invalidRasterError(parameters, name))
        return layer

    def run_core(self, feedback, function, *args, canceled: str | None = None, low: float = 0.0, high: float = 100.0,
                 **kwargs):
        """``function(*args, **kwargs, report=, is_canceled=)`` with core's progress contract on ``feedback``: its
        fractions fill ``low`` to ``high`` percent of the bar, its messages go to the log and the user's cancel
        stops it. Returns its result, or None when canceled (after the warning ``canceled``, when given)."""
        try:
            return function(*args, **kwargs, report=reporting(feedback, low, high), is_canceled=feedback.isCanceled)
        except progress.Canceled:
            if canceled:
                feedback.pushWarning(canceled)
            return None

    @classmethod
    def missing_dependencies(cls) -> str:
        """Why this algorithm cannot run here, or "" when it can."""
        return dependencies.describe_missing(cls.REQUIRES)


def _choices(definition, value) -> list | None:
    """The values a static-string enum is given, one by one; None for what is not a plain value (an expression,
    a model's reference to another step's output), which QGIS evaluates itself."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)):
        values = list(value)
    elif isinstance(value, (int, str)):
        values = [value]
    else:
        return None
    if definition.allowMultiple():  # "PS-RGB,labels" or "0,4", as QGIS splits a string for a multiple choice
        values = [part.strip() if isinstance(part, str) else part
                  for value in values for part in (value.split(",") if isinstance(value, str) else [value])]
    if not all(isinstance(value, (int, str)) and not isinstance(value, bool) for value in values):
        return None
    return values


def _option(definition, value):
    """The option ``value`` names or numbers; None when it does neither."""
    options = definition.options()
    if isinstance(value, str) and value in options:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value < len(options):
        return options[value]
    return None


def enum_name(definition, value):
    """``value`` of the static-string enum ``definition`` with each option given by number given by name; anything
    else as it was (QGIS judges it: a default, an expression, an unknown name)."""
    values = _choices(definition, value)
    if not values or any(_option(definition, choice) is None for choice in values):
        return value
    names = [_option(definition, choice) for choice in values]
    return names if definition.allowMultiple() else names[0]


def invalid_choices(definition, value) -> list:
    """The values of ``value`` that are neither an option of ``definition`` nor an option's number; [] when all
    are (or when ``value`` is empty or not a plain value: QGIS uses the default, or evaluates it)."""
    values = _choices(definition, value)
    if not values:
        return []
    return [choice for choice in values if choice != "" and _option(definition, choice) is None]


def reporting(feedback, low: float = 0.0, high: float = 100.0) -> progress.Report:
    """core's ``report(fraction, message)`` onto ``feedback``: the fraction as ``low``..``high`` percent of the
    bar, the message (when there is one) as a line of the log."""

    def report(fraction: float, message: str | None = None) -> None:
        feedback.setProgress(low + (high - low) * fraction)
        if message:
            feedback.pushInfo(message)

    return report


def features(source, request, feedback, low: float = 0.0, high: float = 100.0, flags=None):
    """``source``'s features for ``request``, moving the bar from ``low`` to ``high`` percent as they are read
    (every thousandth) and stopping early when the user cancels: the caller checks ``feedback.isCanceled()``."""
    total = max(source.featureCount(), 1)
    found = source.getFeatures(request) if flags is None else source.getFeatures(request, flags)
    for count, feature in enumerate(found):
        if feedback.isCanceled():
            return
        yield feature
        if count % 1000 == 0:
            feedback.setProgress(low + (high - low) * count / total)
