"""SarcomaRisk: the radiologist's side of SarcomaRisk inside 3D Slicer.

Pick the case, the T2 MRI, the T1CE MRI or both, and the tumor segment, press Compute: the MRI is
scored by the radiology model of the sequences given in a separate ``PythonSlicer`` process, the
result is saved in the case record (which names that model) and the Grad-CAM appears over the MRI
it was computed on (the T2 when one is selected, else the T1CE). When the record also holds the
clinical data and the pathology score, the fused risk is shown too.

This file is the Qt layer only. The logic lives in ``SarcomaRiskLib`` (no Qt, no Slicer
singletons): what the controls and result labels show (``panel_controls``, ``result_labels``), and
what runs after Compute, including the polling of the scoring process and the fusion that follows
it (``WorkflowController``, which this widget serves as its view). Its modules that need the core
package are imported once the Python dependencies are installed, which happens at the first
Compute after asking, never when Slicer loads the module.
"""

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: Python packages the core needs besides the ones Slicer bundles (numpy, SimpleITK) and the one
#: the PyTorch extension provides (torch, torchvision).
REQUIREMENTS_FILE = Path(__file__).resolve().parent / "Resources" / "requirements.txt"
#: torch/torchvision versions the radiology model needs (pyproject.toml of the core).
TORCH_REQUIREMENT = ">=2.2"
TORCHVISION_REQUIREMENT = ">=0.17"
#: Milliseconds between two looks at the scoring process's output.
POLL_INTERVAL_MS = 200


#
# SarcomaRisk
#


class SarcomaRisk(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SarcomaRisk")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["SarcomaRisk developers"]
        self.parent.helpText = _(
            "Recurrence risk of soft tissue sarcoma from the preoperative MRI: select the case, the T2 "
            "fat-suppressed volume, the contrast-enhanced T1 volume or both, and the tumor segment, then "
            "press Compute. The case is scored by the radiology model of the volumes selected; the radiology "
            "score, its percentile, the tumor volume and the model are saved in the case record and the "
            "Grad-CAM is shown over the MRI (the T2 when selected, else the T1CE). Research software, not for "
            "clinical decisions."
        )
        self.parent.helpText += self.getDefaultModuleDocumentationLink()
        self.parent.acknowledgementText = _(
            "Implements the radiology signature of Wang et al., npj Precision Oncology 2026 (attention CNN "
            "over the tumor region of the preoperative MRI)."
        )


#
# Parameters (saved with the scene)
#


@parameterNodeWrapper
class SarcomaRiskParameterNode:
    """
    caseId - pseudonymous case id of the record the result is saved in.
    t2Volume - fat-suppressed T2 MRI (the reference grid when selected).
    t1ceVolume - contrast-enhanced T1 MRI (the reference grid when no T2 is selected); one of the two
        volumes, or both.
    segmentation, segmentId - the tumor segment.
    score, percentile, tumorVolumeMl - the last result (log relative hazard, 0-100, ml).
    gradcamVolume, gradcamSha256 - the Grad-CAM overlay of the last result and its file's sha256.
    """

    caseId: str
    t2Volume: vtkMRMLScalarVolumeNode
    t1ceVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    segmentId: str
    score: float
    percentile: float
    tumorVolumeMl: float
    gradcamVolume: vtkMRMLScalarVolumeNode
    gradcamSha256: str


#
# SarcomaRiskWidget
#


class SarcomaRiskWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._workflow = None  # SarcomaRiskLib.WorkflowController, made at the first Compute
        self._timer = None
        self._caseIdModel = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SarcomaRisk.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SarcomaRiskLogic()

        # The segment selector has no parameter-node connector: keep it in sync by hand.
        self.ui.segmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onSegmentationSelected)
        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentSelected)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.refreshStatusButton.connect("clicked(bool)", self.updateCaseStatus)
        self.ui.caseIdLineEdit.connect("editingFinished()", self.updateCaseStatus)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)

        # Existing case ids are offered while typing.
        self._caseIdModel = qt.QStringListModel()
        completer = qt.QCompleter()
        completer.setModel(self._caseIdModel)
        completer.setCaseSensitivity(qt.Qt.CaseInsensitive)
        completer.setFilterMode(qt.Qt.MatchContains)
        self.ui.caseIdLineEdit.setCompleter(completer)

        # Store, weights and time limit are per-user settings, not part of a scene.
        settings = slicer.app.userSettings()
        self.ui.storePathLineEdit.currentPath = settings.value("SarcomaRisk/StorePath", "")
        self.ui.weightsPathLineEdit.currentPath = settings.value("SarcomaRisk/WeightsFolder", "")
        self.ui.timeoutSpinBox.value = int(settings.value("SarcomaRisk/TimeLimitSeconds", 600))
        self.ui.deviceComboBox.currentText = settings.value("SarcomaRisk/Device", "auto")
        self.ui.storePathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.onSettingsChanged)
        self.ui.timeoutSpinBox.connect("valueChanged(int)", self.onSettingsChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onSettingsChanged)

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._stopWorkflow()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.refreshCaseIds()
        self.updateCaseStatus()

    def exit(self) -> None:
        # The scoring keeps running while the user visits other modules; only the GUI link goes.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)

    def onSceneStartClose(self, caller, event) -> None:
        self._stopWorkflow()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ---- parameter node ----------------------------------------------------------------------

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        parameterNode = self._parameterNode
        if not parameterNode.t2Volume and not parameterNode.t1ceVolume:
            parameterNode.t2Volume, parameterNode.t1ceVolume = self.logic.guessVolumes()
        if not parameterNode.segmentation:
            segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if segmentation:
                parameterNode.segmentation = segmentation
                parameterNode.segmentId = self.logic.guessTumorSegmentId(segmentation)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        parameterNode = self._parameterNode
        if not parameterNode:
            return
        wasBlocked = self.ui.segmentSelector.blockSignals(True)
        self.ui.segmentSelector.setCurrentNode(parameterNode.segmentation)
        self.ui.segmentSelector.setCurrentSegmentID(parameterNode.segmentId)
        self.ui.segmentSelector.blockSignals(wasBlocked)
        self._updateResults()
        self._updateButtons()

    def onSegmentationSelected(self, node) -> None:
        if self._parameterNode and self._parameterNode.segmentation != node:
            self._parameterNode.segmentation = node
            self._parameterNode.segmentId = self.logic.guessTumorSegmentId(node) if node else ""

    def onSegmentSelected(self, segmentId) -> None:
        if self._parameterNode:
            self._parameterNode.segmentId = segmentId or ""

    def _updateButtons(self) -> None:
        import SarcomaRiskLib

        parameterNode = self._parameterNode
        controls = SarcomaRiskLib.panel_controls(
            case_id=parameterNode.caseId if parameterNode else "",
            t2=parameterNode.t2Volume if parameterNode else None,
            t1ce=parameterNode.t1ceVolume if parameterNode else None,
            segmentation=parameterNode.segmentation if parameterNode else None,
            segment_id=parameterNode.segmentId if parameterNode else "",
            running=self._workflow is not None and self._workflow.running)
        self.ui.computeButton.enabled = controls.compute_enabled
        self.ui.computeButton.toolTip = (
            _("Score the tumor, save the result in the case record and show the Grad-CAM over the MRI.")
            if controls.ready else _("Enter the case id and select the T2 volume, the T1CE volume or both, and the "
                                     "tumor segment."))
        self.ui.cancelButton.enabled = controls.cancel_enabled
        self.ui.inputsCollapsibleButton.enabled = controls.inputs_enabled

    def _updateResults(self) -> None:
        import SarcomaRiskLib

        parameterNode = self._parameterNode
        labels = SarcomaRiskLib.result_labels(gradcam_sha256=parameterNode.gradcamSha256, score=parameterNode.score,
                                              percentile=parameterNode.percentile,
                                              tumor_volume_ml=parameterNode.tumorVolumeMl)
        self.ui.scoreLabel.text = labels.score
        self.ui.percentileLabel.text = labels.percentile
        self.ui.volumeLabel.text = labels.tumor_volume

    # ---- settings ----------------------------------------------------------------------------

    def onSettingsChanged(self, *args) -> None:
        settings = slicer.app.userSettings()
        settings.setValue("SarcomaRisk/StorePath", self.ui.storePathLineEdit.currentPath)
        settings.setValue("SarcomaRisk/WeightsFolder", self.ui.weightsPathLineEdit.currentPath)
        settings.setValue("SarcomaRisk/TimeLimitSeconds", self.ui.timeoutSpinBox.value)
        settings.setValue("SarcomaRisk/Device", self.ui.deviceComboBox.currentText)

    def _storePath(self):
        return self.ui.storePathLineEdit.currentPath or None

    def _weightsDir(self):
        return self.ui.weightsPathLineEdit.currentPath or None

    # ---- case record -------------------------------------------------------------------------

    def refreshCaseIds(self) -> None:
        if not self.logic.coreAvailable():
            return
        try:
            self._caseIdModel.setStringList(self.logic.caseIds(self._storePath()))
        except (ValueError, OSError) as exc:  # an unusable store: shown in the status box, not as a dialog
            self.ui.caseStatusLabel.text = str(exc)

    def updateCaseStatus(self) -> None:
        caseId = self.ui.caseIdLineEdit.text.strip()
        if not caseId:
            self.ui.caseStatusLabel.text = _("Enter a case id to see its record.")
            return
        if not self.logic.coreAvailable():
            self.ui.caseStatusLabel.text = _("SarcomaRisk's Python packages are installed at the first Compute.")
            return
        try:
            status = self.logic.caseStatus(caseId, self._storePath())
        except (ValueError, OSError) as exc:  # invalid id or unusable store: the message says which and how
            self.ui.caseStatusLabel.text = str(exc)
            return
        self.ui.caseStatusLabel.text = "\n".join(status.lines())

    # ---- running -----------------------------------------------------------------------------

    def onComputeButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the radiology score."), waitCursor=True):
            self.logic.ensureDependencies()
            self.ui.logTextEdit.clear()
            self._workflowController().compute(self.logic.scoringInputs(self._parameterNode),
                                               store_path=self._storePath(), weights_dir=self._weightsDir(),
                                               timeout_s=self.ui.timeoutSpinBox.value,
                                               device=self.ui.deviceComboBox.currentText)

    def onTimer(self) -> None:
        self._workflow.tick()

    def onCancelButton(self) -> None:
        if self._workflow is not None:
            self._workflow.cancel()

    def _workflowController(self):
        """The controller of this panel's runs; made once the dependencies are installed."""
        if self._workflow is None:
            import SarcomaRiskLib

            self._workflow = SarcomaRiskLib.WorkflowController(slicer.mrmlScene, self,
                                                               python_path=self.logic.corePythonPath())
        return self._workflow

    def _stopWorkflow(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        if self._workflow is not None:
            self._workflow.stop()

    # ---- what the workflow controller asks of the panel (SarcomaRiskLib.WorkflowView) ----------

    def log(self, line) -> None:
        self.ui.logTextEdit.appendPlainText(line)
        logging.info(line)

    def show_log(self) -> None:
        self.ui.logCollapsibleButton.collapsed = False

    def show_error(self, message, details) -> None:
        slicer.util.errorDisplay(message, detailedText=details)

    def running_changed(self, running) -> None:
        if running:
            self._timer.start()
        else:
            self._timer.stop()
        self._updateButtons()

    def scored(self, result) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the radiology result."), waitCursor=True):
            self.logic.applyResult(self._parameterNode, result)
            slicer.util.setSliceViewerLayers(background=result.reference_node,
                                             foreground=result.gradcam_node,
                                             foregroundOpacity=self.ui.opacitySlider.value, fit=True)

    def record_changed(self) -> None:
        self.refreshCaseIds()
        self.updateCaseStatus()

    def onOpacityChanged(self, value) -> None:
        slicer.util.setSliceViewerLayers(foregroundOpacity=value)


#
# SarcomaRiskLogic
#


class SarcomaRiskLogic(ScriptedLoadableModuleLogic):
    """Thin layer over SarcomaRiskLib: reads the parameter node, installs dependencies."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SarcomaRiskParameterNode(super().getParameterNode())

    # ---- dependencies ------------------------------------------------------------------------

    @staticmethod
    def coreAvailable() -> bool:
        return importlib.util.find_spec("sarcoma_risk") is not None

    def ensureDependencies(self) -> None:
        """Install what scoring needs, asking first: torch (PyTorch extension), packages, the core."""
        self._ensureTorch()
        self._ensureRequirements()
        self._ensureCore()

    @staticmethod
    def _ensureTorch() -> None:
        if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("torchvision") is not None:
            return
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise RuntimeError(_("SarcomaRisk needs PyTorch: install the 'PyTorch' extension from the Extensions "
                                 "Manager, restart Slicer and press Compute again.")) from None
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            torch = torchLogic.installTorch(askConfirmation=True, torchVersionRequirement=TORCH_REQUIREMENT,
                                            torchvisionVersionRequirement=TORCHVISION_REQUIREMENT)
            if torch is None:
                raise RuntimeError(_("PyTorch was not installed, so the MRI cannot be scored. Press Compute "
                                     "again to install it, or use the PyTorch Utils module."))

    @staticmethod
    def _ensureRequirements() -> None:
        try:
            import slicer.packaging as packaging  # Slicer >= 5.12 (5.11 preview)
        except ImportError:
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(packaging.load_requirements(REQUIREMENTS_FILE), requester="SarcomaRisk")
            return
        # Slicer 5.10: no pip_ensure; install the missing packages after asking.
        missing = SarcomaRiskLogic._missingRequirements()
        if not missing:
            return
        if not slicer.util.confirmOkCancelDisplay(
                _("SarcomaRisk needs these Python packages, which will be downloaded and installed now "
                  "(a few minutes):\n\n{packages}").format(packages="\n".join(missing)),
                windowTitle="SarcomaRisk"):
            raise RuntimeError(_("The Python packages SarcomaRisk needs were not installed; press Compute again "
                                 "to install them."))
        slicer.util.pip_install(["-r", str(REQUIREMENTS_FILE)])

    @staticmethod
    def _missingRequirements():
        from importlib.metadata import PackageNotFoundError, version

        missing = []
        for line in REQUIREMENTS_FILE.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name = line.split(";")[0]
            for separator in "<>=!~[ ":
                name = name.split(separator)[0]
            try:
                version(name)
            except PackageNotFoundError:
                missing.append(line)
        return missing

    @staticmethod
    def _ensureCore() -> None:
        """The core package: bundled with an installed extension, or installed from a source checkout."""
        if SarcomaRiskLogic.coreAvailable():
            return
        checkout = Path(__file__).resolve().parent.parent
        if not ((checkout / "pyproject.toml").is_file() and (checkout / "core" / "sarcoma_risk" / "__init__.py").is_file()):
            raise RuntimeError(_("The SarcomaRisk core package is missing from this installation; reinstall the "
                                 "SarcomaRisk extension."))
        if not slicer.util.confirmOkCancelDisplay(
                _("SarcomaRisk's core package will be installed into Slicer's Python from\n{folder}").format(
                    folder=checkout), windowTitle="SarcomaRisk"):
            raise RuntimeError(_("The SarcomaRisk core package was not installed; press Compute again to install it."))
        # Editable: the checkout's weights/ folder stays the default weights folder, and updating the
        # checkout updates what Slicer runs.
        slicer.util.pip_install(["--no-deps", "--editable", str(checkout)])
        importlib.invalidate_caches()

    @staticmethod
    def corePythonPath():
        """Folders the scoring process needs on PYTHONPATH: where a built extension keeps the core."""
        from importlib.metadata import PackageNotFoundError, distribution

        import sarcoma_risk

        try:
            distribution("sarcoma-risk")
            return []  # pip-installed: PythonSlicer finds it in site-packages
        except PackageNotFoundError:
            return [str(Path(sarcoma_risk.__file__).resolve().parent.parent)]

    # ---- scoring -----------------------------------------------------------------------------

    @staticmethod
    def guessVolumes():
        """The (T2, T1CE) volumes to preselect among the scene's MRI volumes (SarcomaRiskLib.guess_volumes)."""
        import SarcomaRiskLib

        volumes = [node for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                   if not node.IsA("vtkMRMLLabelMapVolumeNode") and not node.GetAttribute("SarcomaRisk.Role")]
        return SarcomaRiskLib.guess_volumes(volumes)

    @staticmethod
    def guessTumorSegmentId(segmentationNode) -> str:
        """The segment named like a tumor, else the first segment."""
        segmentation = segmentationNode.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        for segmentId in ids:
            name = segmentation.GetSegment(segmentId).GetName().lower()
            if "tumor" in name or "tumour" in name or "sarcoma" in name:
                return segmentId
        return ids[0] if ids else ""

    @staticmethod
    def scoringInputs(parameterNode):
        import SarcomaRiskLib

        return SarcomaRiskLib.ScoringInputs(
            case_id=parameterNode.caseId.strip(), t2=parameterNode.t2Volume,
            segmentation=parameterNode.segmentation, segment_id=parameterNode.segmentId,
            t1ce=parameterNode.t1ceVolume)

    def startScoring(self, parameterNode, storePath=None, weightsDir=None, timeoutS=None, device="auto"):
        """Check and export the inputs and start the scorer (on ``device``); returns the run and its first log lines."""
        import SarcomaRiskLib

        job = SarcomaRiskLib.RadiologyScoring(
            parameterNode.GetNode().GetScene(), self.scoringInputs(parameterNode),
            store_path=storePath, weights_dir=weightsDir,
            timeout_s=timeoutS or SarcomaRiskLib.DEFAULT_TIMEOUT_S, python_path=self.corePythonPath(), device=device)
        lines = job.start()
        return job, lines

    def process(self, parameterNode, storePath=None, weightsDir=None, timeoutS=None, log=None, device="auto"):
        """Score in one blocking call (scripts and the self-test); returns the RadiologyResult."""
        job, lines = self.startScoring(parameterNode, storePath, weightsDir, timeoutS, device)
        for line in lines:
            (log or logging.info)(line)
        job.wait(log=log or logging.info)
        result = job.finish()
        self.applyResult(parameterNode, result)
        return result

    @staticmethod
    def applyResult(parameterNode, result) -> None:
        with slicer.util.NodeModify(parameterNode.GetNode()):
            parameterNode.score = result.score
            parameterNode.percentile = result.percentile if result.percentile is not None else float("nan")
            parameterNode.tumorVolumeMl = result.tumor_volume_ml if result.tumor_volume_ml is not None else 0.0
            parameterNode.gradcamVolume = result.gradcam_node
            parameterNode.gradcamSha256 = result.gradcam_sha256

    @staticmethod
    def caseStatus(caseId, storePath=None):
        import SarcomaRiskLib

        return SarcomaRiskLib.read_case_status(storePath, caseId)

    @staticmethod
    def caseIds(storePath=None):
        import SarcomaRiskLib

        return SarcomaRiskLib.list_case_ids(storePath)


#
# SarcomaRiskTest
#


class SarcomaRiskTest(ScriptedLoadableModuleTest):
    """Runs the workflow on a phantom case inside Slicer.

    The phantom MRI comes from the core's renderer. The model is the one in
    ``$SARCOMA_RISK_TEST_WEIGHTS`` when set, else a tiny one trained here on a phantom cohort (about
    a minute). The case store is a temporary file, so no real record is touched.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SarcomaRisk_refuses_bad_input()
        self.setUp()
        self.test_SarcomaRisk_scores_a_phantom_case()

    def _phantomCase(self, folder):
        from sarcoma_risk.synthetic.mri import write_phantom_mri

        phantom = write_phantom_mri(Path(folder) / "case", phenotype=0.5, tumor_size_cm=8.0, centre="A",
                                    size="tiny", seed=11, oblique=True)
        t2 = slicer.util.loadVolume(str(phantom.t2fs))
        t1ce = slicer.util.loadVolume(str(phantom.t1ce))
        segmentation = slicer.util.loadSegmentation(str(phantom.seg))
        return t2, t1ce, segmentation

    def _weights(self, folder):
        weights = os.environ.get("SARCOMA_RISK_TEST_WEIGHTS")
        if weights:
            return weights
        import SarcomaRiskLib

        self.delayDisplay("Training a tiny radiology model on a phantom cohort")
        out = Path(folder) / "weights"
        cohort = Path(folder) / "cohort"
        for arguments in (["synth", "--out", str(cohort), "--cases", "16", "--size", "tiny", "--seed", "5"],
                          ["train", "radiology", "--manifest", str(cohort / "manifest.csv"), "--out", str(out),
                           "--preset", "tiny", "--folds", "0", "--epochs", "8"]):
            process = SarcomaRiskLib.CliProcess(SarcomaRiskLib.default_python_executable(), arguments,
                                                title="Training the test model", timeout_s=900,
                                                python_path=SarcomaRiskLogic.corePythonPath()).start()
            process.wait(log=logging.info)
            process.stdout()
            process.close()
        return str(out)

    def test_SarcomaRisk_refuses_bad_input(self):
        self.delayDisplay("Bad input is refused with a clear message")
        logic = SarcomaRiskLogic()
        logic.ensureDependencies()
        parameterNode = logic.getParameterNode()
        parameterNode.caseId = "STS-0001"
        with tempfile.TemporaryDirectory() as folder:
            store = Path(folder) / "cases.sqlite"
            try:
                logic.startScoring(parameterNode, storePath=store)
            except ValueError as exc:
                self.assertIn("T2 volume and T1CE volume", str(exc))
            else:
                self.fail("scoring without an MRI volume was not refused")
            t2, _t1ce, segmentation = self._phantomCase(folder)
            parameterNode.t2Volume = t2
            parameterNode.segmentation = segmentation
            parameterNode.segmentId = logic.guessTumorSegmentId(segmentation)
            parameterNode.caseId = "Jane Doe"
            try:
                logic.startScoring(parameterNode, storePath=store)
            except ValueError as exc:
                self.assertIn("case_id", str(exc))
            else:
                self.fail("a case id with a space was not refused")
            self.assertFalse(store.exists(), "a refused run must not create the store")
        self.delayDisplay("Test passed")

    def test_SarcomaRisk_scores_a_phantom_case(self):
        self.delayDisplay("Scoring a phantom case")
        import numpy as np

        logic = SarcomaRiskLogic()
        logic.ensureDependencies()
        folder = tempfile.mkdtemp(prefix="SarcomaRiskTest-")
        try:
            weights = self._weights(folder)
            t2, t1ce, segmentation = self._phantomCase(folder)
            parameterNode = logic.getParameterNode()
            parameterNode.caseId = "STS-TEST-1"
            parameterNode.t2Volume = t2
            parameterNode.t1ceVolume = t1ce
            parameterNode.segmentation = segmentation
            parameterNode.segmentId = logic.guessTumorSegmentId(segmentation)
            store = Path(folder) / "cases.sqlite"
            result = logic.process(parameterNode, storePath=store, weightsDir=weights)

            cam = parameterNode.gradcamVolume
            self.assertIsNotNone(cam)
            camMatrix, t2Matrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
            cam.GetIJKToRASMatrix(camMatrix)
            t2.GetIJKToRASMatrix(t2Matrix)
            self.assertTrue(np.allclose(slicer.util.arrayFromVTKMatrix(camMatrix),
                                        slicer.util.arrayFromVTKMatrix(t2Matrix), atol=1e-4))
            self.assertTrue(np.all(np.isfinite(slicer.util.arrayFromVolume(cam))))
            status = logic.caseStatus("STS-TEST-1", store)
            self.assertIn("radiology", status.present)
            self.assertEqual(status.radiology["score"], result.score)
            self.assertIn("provenance", status.radiology)
            composite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
            self.assertEqual(composite.GetForegroundVolumeID(), cam.GetID())

            sceneFile = Path(folder) / "scene.mrb"
            self.assertTrue(slicer.util.saveScene(str(sceneFile)))
            slicer.mrmlScene.Clear()
            slicer.util.loadScene(str(sceneFile))
            reloaded = logic.getParameterNode()
            self.assertEqual(reloaded.caseId, "STS-TEST-1")
            self.assertIsNotNone(reloaded.gradcamVolume)
            self.assertEqual(reloaded.gradcamSha256, result.gradcam_sha256)
        finally:
            slicer.mrmlScene.Clear()
            shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")
