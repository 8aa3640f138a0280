// The 3D pages' stage (viewer.html, live.html): renderer, lit scene, floor grid, camera with orbit controls that
// follow the window, and the framing of a standing figure.
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

export function makeStage() {
  const renderer = new THREE.WebGLRenderer({ antialias: true });
  renderer.setPixelRatio(window.devicePixelRatio);
  renderer.setSize(window.innerWidth, window.innerHeight);
  document.body.prepend(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xecece8);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8a8275, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 2.2);
  key.position.set(-1.5, 3, 2.5);
  scene.add(key);
  const grid = new THREE.GridHelper(6, 24, 0xb0aca4, 0xcfcbc3);
  scene.add(grid);
  const camera = new THREE.PerspectiveCamera(35, window.innerWidth / window.innerHeight, 0.05, 50);
  const controls = new OrbitControls(camera, renderer.domElement);
  window.addEventListener("resize", () => {
    camera.aspect = window.innerWidth / window.innerHeight;
    camera.updateProjectionMatrix();
    renderer.setSize(window.innerWidth, window.innerHeight);
  });
  return { renderer, scene, grid, camera, controls };
}

// frame a standing figure: its bounds now, seen from the front (+z), a little above the waist
export function frameFigure(root, { grid, camera, controls }) {
  root.updateMatrixWorld(true);
  root.traverse((node) => { if (node.isSkinnedMesh) node.computeBoundingBox(); });  // as posed now, not cached
  const box = new THREE.Box3().setFromObject(root);
  const centre = box.getCenter(new THREE.Vector3()), height = box.max.y - box.min.y;
  grid.position.y = box.min.y;
  controls.target.copy(centre);
  camera.position.set(centre.x, centre.y + 0.1 * height, centre.z + 2.6 * height);
  controls.update();
}
