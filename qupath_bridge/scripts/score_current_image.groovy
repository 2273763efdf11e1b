/*
 * SarcomaRisk: score the current image from inside QuPath (0.4, 0.5, 0.6).
 *
 * Open it in Automate > Script editor and run it on one image (Run), or on several with
 * Run > Run for project. For each image it:
 *   1. reads the case id from the image's project metadata key "case_id" (never guessed: an image
 *      without one is skipped with a message; add it with right-click > Add metadata in the project list);
 *   2. exports the image's classified area annotations to a temporary GeoJSON file (none: the whole
 *      tissue is scored); `sarcoma-qupath` keeps those of the tumor's class: ANNOTATION_CLASSES below, else
 *      the project's default (`sarcoma-qupath settings PROJECT_DIR --annotation-class NAME`), else "Tumor",
 *      matched as QuPath names classes ("Tumor" also takes the derived "Tumor: Positive", not "tumor" or
 *      "Tumour"); an image whose classified annotations are all of other classes fails with their names;
 *   3. runs `sarcoma-qupath score-image` for the slide file, which scores it and updates the case record;
 *   4. replaces the image's earlier SarcomaRisk tiles by the new ones (tiles named "SarcomaRisk" with the
 *      measurement recurrence_probability; nothing else is touched) and writes the slide score, model and
 *      date into the image's project metadata.
 * Then view the result with Measure > Show measurement maps > recurrence_probability.
 *
 * Because QuPath itself writes here, the project may stay open (unlike `sarcoma-qupath score`, which works
 * on a closed project).
 */

import groovy.json.JsonSlurper
import java.nio.file.Files
import qupath.lib.io.PathIO

// ---- Settings: edit these ------------------------------------------------------------------------
// The sarcoma-qupath command: its full path if it is not on QuPath's PATH, e.g.
// "/home/me/sarcoma-risk/.venv/bin/sarcoma-qupath" or "C:\\SarcomaRisk\\venv\\Scripts\\sarcoma-qupath.exe"
def SARCOMA_QUPATH = "sarcoma-qupath"
// The case store: "" for $SARCOMA_RISK_STORE or the per-user default; a file such as "/data/cases.sqlite";
// or the department's server, e.g. "https://records.example.org:8443" (its API token is read from
// $SARCOMA_RISK_TOKEN or your token file, saved once with `sarcoma-risk users save-token`; never put it here)
def STORE = ""
// Extra options, e.g. ["--weights", "/data/weights"]
def EXTRA_ARGUMENTS = []
// The QuPath class(es) of the tumor annotations, exactly as QuPath shows them, e.g. ["Tumour", "Tumor_vital"];
// empty: the project's default set with `sarcoma-qupath settings`, else "Tumor"
def ANNOTATION_CLASSES = []
// ---------------------------------------------------------------------------------------------------

def TILE_NAME = "SarcomaRisk"
def MEASUREMENT = "recurrence_probability"
def CASE_ID_KEY = "case_id"

def entry = getProjectEntry()
def imageName = getCurrentImageName()
if (entry == null) {
    throw new RuntimeException("SarcomaRisk: '" + imageName + "' is not in a project; open it from a QuPath project")
}
def caseId = entry.getMetadataValue(CASE_ID_KEY)
if (caseId == null || caseId.trim().isEmpty()) {
    println "SarcomaRisk: SKIPPED '" + imageName + "': no '" + CASE_ID_KEY + "' in its project metadata " +
            "(right-click the image in the project list > Add metadata)"
    return
}
def uris = getCurrentServer().getURIs()
if (uris.size() != 1 || uris[0].getScheme() != "file") {
    throw new RuntimeException("SarcomaRisk: '" + imageName + "' is not a single local slide file (" + uris + ")")
}
def slide = new File(uris[0])
if (!slide.isFile()) {
    throw new RuntimeException("SarcomaRisk: the slide file of '" + imageName + "' is missing: " + slide +
            " (File > Project... > Check project URIs)")
}

def work = Files.createTempDirectory("sarcoma-qupath-").toFile()
try {
    // Every classified outline: sarcoma-qupath picks the tumor's class, or names the classes it found.
    def classified = getAnnotationObjects().findAll {
        it.getPathClass() != null && it.getROI() != null && it.getROI().isArea()
    }
    def command = [SARCOMA_QUPATH, "score-image", "--slide", slide.getAbsolutePath(), "--case", caseId.trim(),
                   "--out", work.getAbsolutePath(), "--quiet",
                   "--project", getProject().getPath().toString()]
    ANNOTATION_CLASSES.each { command += ["--annotation-class", it.toString()] }
    if (!classified.isEmpty()) {
        def annotations = new File(work, "annotations.geojson")
        exportObjectsToGeoJson(classified, annotations.getAbsolutePath(), "FEATURE_COLLECTION")
        command += ["--annotations", annotations.getAbsolutePath()]
    }
    if (!STORE.trim().isEmpty()) {
        command += ["--store", STORE.trim()]
    }
    command += EXTRA_ARGUMENTS.collect { it.toString() }

    def process
    try {
        process = new ProcessBuilder(command).redirectErrorStream(true).start()
    } catch (IOException e) {
        throw new RuntimeException("SarcomaRisk: cannot run '" + SARCOMA_QUPATH + "' (" + e.getMessage() + "); set " +
                "SARCOMA_QUPATH at the top of this script to the full path of the sarcoma-qupath command")
    }
    def output = new StringBuilder()
    process.inputStream.eachLine { line -> output.append(line).append("\n") }
    int status = process.waitFor()
    if (status != 0) {
        throw new RuntimeException("SarcomaRisk: scoring '" + imageName + "' failed, nothing was changed:\n" + output)
    }
    print output

    def tiles = PathIO.readObjects(new File(work, "tiles.geojson"))
    def earlier = getTileObjects().findAll {
        it.getName() == TILE_NAME && it.getMeasurementList().containsKey(MEASUREMENT)
    }
    removeObjects(earlier, true)
    addObjects(tiles)
    def metadata = new JsonSlurper().parse(new File(work, "metadata.json"))
    metadata.each { key, value -> entry.putMetadataValue(key.toString(), value.toString()) }
    getProject().syncChanges()
    println "SarcomaRisk: '" + imageName + "' (" + caseId.trim() + "): replaced " + earlier.size() + " tiles by " +
            tiles.size() + "; score " + metadata["sarcoma_risk_score"] + ", " + metadata["sarcoma_risk_region"]
} finally {
    work.deleteDir()
}
