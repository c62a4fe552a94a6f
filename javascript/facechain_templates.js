// Templates view of the FaceChain tab.

// "Send to FaceChain" under the host's galleries: after the host copied the image into the template field it calls
// switch_to_<tabname> (modules/infotext_utils.py connect_paste_params_buttons); show the FaceChain tab, Templates view.
function switch_to_facechain_template() {
    var nav = gradioApp().querySelectorAll("#tabs > .tab-nav > button, #tabs > div > button");
    for (var i = 0; i < nav.length; i++) {
        if (nav[i].textContent.trim() === "FaceChain") { nav[i].click(); break; }
    }
    var views = gradioApp().querySelectorAll("#facechain_views > .tab-nav > button, #facechain_views > div > button");
    for (var j = 0; j < views.length; j++) {
        if (views[j].textContent.trim() === "Templates") { views[j].click(); break; }
    }
    return Array.from(arguments);
}

// Run button: the host's progress bar above the results and Interrupt over the button, for the id the job
// registers (facechain.js: one task id convention for every FaceChain button).
function facechain_template_submit() {
    return facechain_submit("facechain_tpl", arguments);
}
