"""spacenet:deletemodel: remove one of the user's own (adapted) models from the user models folder."""

from qgis.core import QgsProcessingException, QgsProcessingOutputString, QgsProcessingParameterString

from ..qgis_adapter.models import model_store
from .base import SpaceNetAlgorithm


class DeleteModel(SpaceNetAlgorithm):
    MODEL = "MODEL"
    DELETED = "DELETED"

    GROUP = "models"
    REQUIRES = ()

    def name(self):
        return "deletemodel"

    def displayName(self):  # noqa: N802
        return self.tr("Delete a model of yours")

    def shortHelpString(self):  # noqa: N802
        store = model_store()
        mine = ", ".join(store.user_names()) or self.tr("none yet")
        return self.tr(
            "<p>Deletes a model you made (with <i>Adapt model to this area</i>) from your user models folder: its "
            "files NAME.onnx and NAME.fp16.onnx. Shipped models cannot be deleted.</p>"
            f"<p>Your models: {mine} (in {store.user_dir}).</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString(self.MODEL, self.tr("Model to delete (its name)")))
        self.addOutput(QgsProcessingOutputString(self.DELETED, self.tr("Deleted files")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.fetch.model_store import UnknownModelError

        name = self.parameterAsString(parameters, self.MODEL, context).strip()
        try:
            removed = model_store().delete_user_model(name)
        except (UnknownModelError, OSError) as error:
            raise QgsProcessingException(str(error)) from error
        feedback.pushInfo(self.tr(f"Deleted {', '.join(str(p) for p in removed)}."))
        return {self.DELETED: ";".join(str(p) for p in removed)}
